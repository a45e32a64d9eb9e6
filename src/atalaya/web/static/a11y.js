// Names for controls that libraries draw without one (Leaflet-Geoman's draw
// buttons are links with an icon and a title on their parent): a screen
// reader would announce "link" and nothing else. Each such control takes its
// own title, else its parent's, as its accessible name.

const CONTROLS = "a[role='button'], a.leaflet-buttons-control-button, button";

function name(node) {
  if (node.getAttribute("aria-label") || node.textContent.trim()) return;
  const title = node.getAttribute("title") || node.parentElement?.getAttribute("title");
  if (title) node.setAttribute("aria-label", title);
}

function scan(root) {
  if (root.matches?.(CONTROLS)) name(root);
  root.querySelectorAll?.(CONTROLS).forEach(name);
}

scan(document);
new MutationObserver((changes) => {
  for (const change of changes) change.addedNodes.forEach(scan);
}).observe(document.body, { childList: true, subtree: true });

// A table wider than the screen scrolls inside itself (a phone): keyboard
// users must be able to reach it to scroll it, so it joins the tab order
// while it scrolls.
function scrollers() {
  document.querySelectorAll("table.grid, .scroll").forEach((node) => {
    if (node.scrollWidth > node.clientWidth + 1) node.setAttribute("tabindex", "0");
    else if (node.getAttribute("tabindex") === "0") node.removeAttribute("tabindex");
  });
}

scrollers();
window.addEventListener("resize", scrollers);
new MutationObserver(scrollers).observe(document.querySelector("main") ?? document.body, {
  childList: true,
  subtree: true,
});
