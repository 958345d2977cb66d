// OS family icons (the `os` of an Image): small inline SVG badges built with the DOM, so
// no request leaves the page and the CSP needs nothing new. They are simple coloured shapes
// with a letter, drawn for this project: no vendor's logo is copied (see docs/ui.md).

const SVG = "http://www.w3.org/2000/svg";

/** Per family: the label people read, the badge colour, its shape and its letter(s). */
export const FAMILIES = {
  debian: { label: "Debian", colour: "#a80030", shape: "circle", text: "D" },
  ubuntu: { label: "Ubuntu", colour: "#e95420", shape: "circle", text: "U" },
  fedora: { label: "Fedora", colour: "#294172", shape: "circle", text: "F" },
  rhel: { label: "RHEL-like", colour: "#c00000", shape: "square", text: "R" },
  alpine: { label: "Alpine", colour: "#0d597f", shape: "triangle", text: "A" },
  arch: { label: "Arch", colour: "#1793d1", shape: "hexagon", text: "Ar" },
  opensuse: { label: "openSUSE", colour: "#4f8a10", shape: "hexagon", text: "S" },
  freebsd: { label: "FreeBSD", colour: "#8c1d18", shape: "square", text: "B" },
  windows: { label: "Windows", colour: "#0063b1", shape: "square", text: "W" },
  linux: { label: "Linux", colour: "#333333", shape: "diamond", text: "L" },
  other: { label: "Other", colour: "#6b7280", shape: "diamond", text: "?" },
};

/** The family entry of `os`, unknown spellings (a newer vmd) as "other". */
export const family = (os) => FAMILIES[os] || FAMILIES.other;

/** The outline of a 32×32 badge of `shape`. */
function outline(shape) {
  const at = (name, attrs) => {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    return node;
  };
  switch (shape) {
    case "circle": return at("circle", { cx: 16, cy: 16, r: 15 });
    case "square": return at("rect", { x: 1, y: 1, width: 30, height: 30, rx: 6 });
    case "triangle": return at("path", { d: "M16 1 L31 29 Q31 31 29 31 L3 31 Q1 31 1 29 Z" });
    case "hexagon": return at("path", { d: "M16 1 L29 8.5 L29 23.5 L16 31 L3 23.5 L3 8.5 Z" });
    default: return at("path", { d: "M16 1 L31 16 L16 31 L1 16 Z" });
  }
}

/** An `<svg>` badge for OS family `os` (aria-hidden: the name next to it says it). */
export function osIcon(os) {
  const f = family(os);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 32 32");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", "os-badge");
  svg.dataset.os = FAMILIES[os] ? os : "other";
  const shape = outline(f.shape);
  shape.setAttribute("fill", f.colour);
  const text = document.createElementNS(SVG, "text");
  text.setAttribute("x", "16");
  text.setAttribute("y", f.shape === "triangle" ? "26" : "21.5");
  text.setAttribute("text-anchor", "middle");
  text.setAttribute("font-size", f.text.length > 1 ? "12" : "15");
  text.setAttribute("font-weight", "700");
  text.setAttribute("font-family", "system-ui, sans-serif");
  text.setAttribute("fill", "#fff");
  text.textContent = f.text;
  svg.append(shape, text);
  return svg;
}

/** `<option>`s of every family for a `<select>`, in the order vmd lists them. */
export function familyOptions() {
  return Object.entries(FAMILIES).map(([value, f]) => new Option(f.label, value));
}
