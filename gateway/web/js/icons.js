// Kind icons (uav, camera, bodycam, radio, satcom, power, network) as SVG built with
// the DOM API: static shapes, no markup strings.
"use strict";

import { svg } from "./dom.js";

const SHAPES = {
  uav: [
    ["path", { d: "M6 6L18 18M18 6L6 18" }],
    ["circle", { cx: 5, cy: 5, r: 3 }], ["circle", { cx: 19, cy: 5, r: 3 }],
    ["circle", { cx: 5, cy: 19, r: 3 }], ["circle", { cx: 19, cy: 19, r: 3 }],
    ["rect", { x: 9.5, y: 9.5, width: 5, height: 5, rx: 1, class: "fill" }],
  ],
  camera: [
    ["rect", { x: 2.5, y: 7, width: 13, height: 10, rx: 1.5 }],
    ["path", { d: "M15.5 11L21.5 7.5V16.5L15.5 13Z" }],
    ["circle", { cx: 9, cy: 12, r: 2.2, class: "fill" }],
  ],
  bodycam: [
    ["circle", { cx: 12, cy: 5.5, r: 3 }],
    ["path", { d: "M5.5 21.5v-4.5a6.5 6.5 0 0 1 13 0v4.5" }],
    ["circle", { cx: 12, cy: 16.5, r: 1.8, class: "fill" }],
  ],
  radio: [
    ["rect", { x: 7, y: 8, width: 10, height: 14, rx: 1.5 }],
    ["path", { d: "M9.5 8V2M10 12h4M10 15h4M10 18h4" }],
  ],
  satcom: [
    ["path", { d: "M4 9a9 9 0 0 0 11 11Z" }],
    ["path", { d: "M9.5 14.5L16 8" }],
    ["circle", { cx: 17.5, cy: 6.5, r: 2, class: "fill" }],
    ["path", { d: "M7 21.5h8" }],
  ],
  power: [
    ["path", { d: "M13.5 2L4.5 13.5H11L10 22L19.5 9.5H13Z", class: "fill" }],
  ],
  network: [
    ["path", { d: "M12 10L7.5 22M12 10L16.5 22M9.3 17.5h5.4" }],
    ["circle", { cx: 12, cy: 8.5, r: 1.6, class: "fill" }],
    ["path", { d: "M8.2 4.8a5.5 5.5 0 0 0 0 7.4M15.8 4.8a5.5 5.5 0 0 1 0 7.4" }],
  ],
};

export const KINDS = Object.keys(SHAPES);

export function kindIcon(kind, size = 20) {
  const shapes = SHAPES[kind] || [["circle", { cx: 12, cy: 12, r: 6 }]];
  const root = svg("svg", { viewBox: "0 0 24 24", width: size, height: size, class: `kind-icon kind-${KINDS.includes(kind) ? kind : "other"}`,
    "aria-hidden": "true" });
  for (const [tag, attrs] of shapes) root.appendChild(svg(tag, attrs));
  return root;
}
