// Reads from the server that survive one dropped connection. A GET here is
// idempotent, so when the browser drops it before any answer (a network
// change, a laptop waking up: fetch rejects with a TypeError) it is asked
// once more before the page shows an error. An HTTP error is an answer and
// is never retried.

const RETRY_AFTER_MS = 300;

export async function getJSON(url) {
  const ask = () =>
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  try {
    return await ask();
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    await new Promise((resolve) => setTimeout(resolve, RETRY_AFTER_MS));
    return ask();
  }
}
