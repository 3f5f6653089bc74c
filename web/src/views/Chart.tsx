// One uPlot chart of a shaped usage series (usage.ts): drawn on a canvas by uPlot, sized to
// its box, redrawn in the colours of the theme in force.

import "uplot/dist/uPlot.min.css";

import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";

import { formatValue, type ShapedChart } from "../usage";

const HEIGHT = 170;

/** Changes whenever the theme does (the toggle, or the system's preference). */
function useThemeVersion(): number {
  const [version, setVersion] = useState(0);
  useEffect(() => {
    const bump = () => setVersion((v) => v + 1);
    const media = window.matchMedia("(prefers-color-scheme: dark)");
    media.addEventListener("change", bump);
    const watch = new MutationObserver(bump);
    watch.observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
    return () => {
      media.removeEventListener("change", bump);
      watch.disconnect();
    };
  }, []);
  return version;
}

function options(shaped: ShapedChart, width: number, box: HTMLElement): uPlot.Options {
  // A canvas cannot read CSS variables: take the colours the stylesheet resolved on the box.
  const style = getComputedStyle(box);
  const ink = style.color;
  const grid = style.borderTopColor;
  const unit = shaped.spec.unit;
  const axis = { stroke: ink, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
  return {
    width,
    height: HEIGHT,
    legend: { live: true },
    cursor: { drag: { x: false, y: false } },
    scales: {
      y: unit === "percent"
        ? { range: [0, 100] }
        : { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] },
    },
    series: [
      {},
      ...shaped.series.map((s) => ({
        label: s.label,
        stroke: s.color,
        width: 1.5,
        fill: `${s.color}1f`,
        spanGaps: false, // a slot without a sample is a gap, not a line across it
        value: (_u: uPlot, v: number | null) => formatValue(unit, v),
      })),
    ],
    axes: [
      axis,
      { ...axis, size: 86, values: (_u, splits) => splits.map((v) => formatValue(unit, v)) },
    ],
  };
}

export function UPlotChart({ shaped }: { shaped: ShapedChart }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const theme = useThemeVersion();
  const seriesKey = shaped.series.map((s) => s.key).join(",");

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const u = new uPlot(options(shaped, el.clientWidth || 400, el), shaped.data, el);
    plot.current = u;
    const resize = new ResizeObserver(() => {
      if (el.clientWidth > 0) u.setSize({ width: el.clientWidth, height: HEIGHT });
    });
    resize.observe(el);
    return () => {
      resize.disconnect();
      u.destroy();
      plot.current = null;
    };
    // The data is set below; a new chart only for other series, a unit or a theme.
  }, [shaped.spec.id, seriesKey, theme]);

  useEffect(() => {
    plot.current?.setData(shaped.data);
  }, [shaped.data]);

  return <div class="chart" ref={box} data-testid={`chart-${shaped.spec.id}`} />;
}
