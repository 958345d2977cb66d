// Small DOM helpers for the admin tables: a row of text cells keyed by name, a button, and
// a <select> refilled with options while keeping the current choice.

/** A `<tr data-key=KEY>` of text cells (a Node cell is appended as it is). */
export function row(key, cells) {
  const tr = document.createElement("tr");
  tr.dataset.key = key;
  for (const cell of cells) {
    const td = document.createElement("td");
    if (cell instanceof Node) td.append(cell);
    else td.textContent = cell ?? "";
    tr.append(td);
  }
  return tr;
}

/** A button labelled `label` running `onClick`. */
export function button(label, onClick, className = "secondary") {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.textContent = label;
  b.addEventListener("click", onClick);
  return b;
}

/** A span holding `nodes`. */
export function group(...nodes) {
  const span = document.createElement("span");
  span.className = "row-actions";
  span.append(...nodes);
  return span;
}

/** Refills `select` with `values` (after its first `keep` options), keeping the choice. */
export function fillSelect(select, values, keep = 0) {
  const chosen = select.value;
  const fixed = [...select.options].slice(0, keep);
  const options = values.map((v) => new Option(v, v));
  select.replaceChildren(...fixed, ...options);
  if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
}

/** An RFC 3339 time as "YYYY-MM-DD HH:MM" (UTC). */
export const when = (at) => (at ? at.replace("T", " ").slice(0, 16) : "");
