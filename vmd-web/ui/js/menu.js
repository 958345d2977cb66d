// The per-VM action menu, opened by a card's ⋮ button or by right-clicking the card:
// a role="menu" list of buttons, keyboard operable (arrows, Escape), closed by any click
// outside. Items a VM's state does not allow are disabled; vmd still judges every action.

const menu = () => document.getElementById("vm-menu");
let opener = null;

/** Closes the menu, returning focus to what opened it. */
export function closeMenu() {
  const el = menu();
  if (el.hidden) return;
  el.hidden = true;
  opener?.setAttribute("aria-expanded", "false");
  opener?.focus();
  opener = null;
}

/** A menu item button. */
function item(entry, vm, onPick) {
  const button = document.createElement("button");
  button.type = "button";
  button.setAttribute("role", "menuitem");
  button.dataset.action = entry.id;
  button.textContent = entry.label;
  button.disabled = !entry.allowed(vm.state);
  if (entry.danger) button.classList.add("danger");
  button.addEventListener("click", () => {
    closeMenu();
    onPick(entry.id, vm.name);
  });
  return button;
}

/** Opens the menu of `vm` at page position (x, y); `from` gets focus back on close. */
export function openMenu(vm, entries, onPick, x, y, from) {
  closeMenu();
  const el = menu();
  el.replaceChildren(...entries.map((e) => item(e, vm, onPick)));
  el.setAttribute("aria-label", `Actions for ${vm.name}`);
  el.dataset.vm = vm.name;
  el.hidden = false;
  const width = el.offsetWidth, height = el.offsetHeight;
  el.style.left = `${Math.min(x, window.scrollX + innerWidth - width - 8)}px`;
  el.style.top = `${Math.min(y, window.scrollY + innerHeight - height - 8)}px`;
  opener = from;
  from?.setAttribute("aria-expanded", "true");
  el.querySelector("button:not(:disabled)")?.focus();
}

/** Moves focus among enabled items with the arrow keys. */
function onKey(event) {
  const el = menu();
  if (el.hidden) return;
  if (event.key === "Escape") return closeMenu();
  if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
  event.preventDefault();
  const items = [...el.querySelectorAll("button:not(:disabled)")];
  const at = items.indexOf(document.activeElement);
  const step = event.key === "ArrowDown" ? 1 : -1;
  items[(at + step + items.length) % items.length]?.focus();
}

/** Installs the global close handlers once. */
export function installMenu() {
  document.addEventListener("keydown", onKey);
  document.addEventListener("click", (event) => {
    const el = menu();
    if (!el.hidden && !el.contains(event.target) && event.target !== opener) closeMenu();
  });
}
