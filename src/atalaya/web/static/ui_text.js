// The words the scripts write, in the page's language: the page carries them
// as JSON (#ui-text, from atalaya.web.ui_text); English is the fallback.

const node = document.getElementById("ui-text");
const words = node ? JSON.parse(node.textContent || "{}") : {};

// The text for `key` with its %(name)s placeholders filled from `values`.
export function t(key, values = {}, fallback = key) {
  const text = words[key] || fallback;
  return text.replace(/%\((\w+)\)s/g, (_, name) => (name in values ? String(values[name]) : ""));
}
