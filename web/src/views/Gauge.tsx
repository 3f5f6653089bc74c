import { type Capacity, percent } from "../summary";

interface Props {
  id: string; // test id prefix: <id>-used, <id>-allocated, ...
  title: string;
  cap: Capacity;
  format: (v: number) => string;
  unit?: string; // after the spare figure, which stands alone
  note?: string; // what the figures leave out
}

function Bar({ value, scale, physical, kind }: {
  value: number; scale: number; physical: number; kind: string;
}) {
  const pct = scale > 0 ? (100 * value) / scale : 0;
  const mark = scale > 0 ? (100 * physical) / scale : 100;
  return (
    <div class="gauge-bar">
      <div class={`gauge-fill ${kind} ${value > physical ? "over" : ""}`}
           style={{ width: `${Math.min(100, pct)}%` }} />
      {mark < 100 && <div class="gauge-mark" style={{ left: `${mark}%` }} title="physical" />}
    </div>
  );
}

/** Used and allocated against what the hosts have, on one scale: past the mark is
 *  overcommit. */
export function Gauge({ id, title, cap, format, unit = "", note }: Props) {
  const scale = Math.max(cap.physical, cap.allocated, cap.used);
  const ratio = cap.physical > 0 ? cap.allocated / cap.physical : 0;
  const spare = cap.spareIfLargestFails;
  return (
    <section class="card gauge" data-testid={`gauge-${id}`}>
      <h3>{title}</h3>
      <div class="gauge-row">
        <span class="gauge-label">Used</span>
        <Bar value={cap.used} scale={scale} physical={cap.physical} kind="used" />
        <span class="gauge-figure" data-testid={`${id}-used`} data-value={cap.used}>
          {format(cap.used)} of <span data-testid={`${id}-physical`} data-value={cap.physical}>
            {format(cap.physical)}</span> ({percent(cap.used, cap.physical)}%)
        </span>
      </div>
      <div class="gauge-row">
        <span class="gauge-label">Allocated</span>
        <Bar value={cap.allocated} scale={scale} physical={cap.physical} kind="allocated" />
        <span class="gauge-figure" data-testid={`${id}-allocated`} data-value={cap.allocated}>
          {format(cap.allocated)} ({percent(cap.allocated, cap.physical)}%
          {ratio > 1 ? `, overcommit ${ratio.toFixed(2)}×` : ""})
        </span>
      </div>
      <p class={`gauge-spare ${spare < 0 ? "bad" : ""}`} data-testid={`${id}-spare`}
         data-value={spare}>
        {cap.largestHost === null
          ? "No host takes VMs"
          : spare >= 0
            ? `If ${cap.largestHost} fails: ${format(spare)}${unit} spare`
            : `If ${cap.largestHost} fails: short by ${format(-spare)}${unit}`}
      </p>
      {note && <p class="muted small" data-testid={`${id}-note`}>{note}</p>}
    </section>
  );
}
