// Candles of one symbol (lightweight-charts): history from /market/{symbol}/history,
// the current bar from the stream, the user's fills as markers.

import { CandlestickSeries, createChart, createSeriesMarkers, type IChartApi, type ISeriesApi,
         type ISeriesMarkersPluginApi, type SeriesMarker, type Time, type UTCTimestamp }
  from "lightweight-charts";
import { toTicks } from "./num";

export interface WireBar { start: string; open: string; high: string; low: string; close: string }
export interface Fill { ts: string; side: string; qty: number; price: string }

const seconds = (iso: string): number =>
  Math.floor(Date.parse(/Z$|[+-]\d\d:\d\d$/.test(iso) ? iso : iso + "Z") / 1000);
const price = (text: string): number => (toTicks(text) ?? 0) / 10_000;

export class Candles {
  private chart: IChartApi;
  private series: ISeriesApi<"Candlestick">;
  private markers: ISeriesMarkersPluginApi<Time>;
  private width = 60;
  private lastStart = 0;

  constructor(el: HTMLElement) {
    this.chart = createChart(el, {
      autoSize: true,
      layout: { background: { color: "#11151c" }, textColor: "#c8d0da" },
      grid: { vertLines: { color: "#1e2530" }, horzLines: { color: "#1e2530" } },
      timeScale: { timeVisible: true, secondsVisible: true },
    });
    this.series = this.chart.addSeries(CandlestickSeries, {
      priceFormat: { type: "price", precision: 4, minMove: 0.0001 },
    });
    this.markers = createSeriesMarkers(this.series, []);
  }

  load(bars: WireBar[], intervalSeconds: number): void {
    this.width = intervalSeconds;
    const data = bars.map((b) => this.bar(b));
    this.series.setData(data);
    this.lastStart = data.length ? Number(data[data.length - 1].time) : 0;
    this.chart.timeScale().scrollToRealTime();
  }

  /** A bar from the stream (the current one, each time it changes). */
  update(b: WireBar, intervalSeconds: number): void {
    if (intervalSeconds !== this.width) return;
    const bar = this.bar(b);
    if (Number(bar.time) < this.lastStart) return;
    this.lastStart = Number(bar.time);
    this.series.update(bar);
  }

  fills(fills: Fill[]): void {
    const marks: SeriesMarker<Time>[] = fills.map((f) => {
      const buy = f.side === "buy";
      return { time: (Math.floor(seconds(f.ts) / this.width) * this.width) as UTCTimestamp,
               position: buy ? "belowBar" : "aboveBar", shape: buy ? "arrowUp" : "arrowDown",
               color: buy ? "#2ea043" : "#f85149", text: `${buy ? "B" : "S"} ${f.qty}@${f.price}` };
    });
    marks.sort((a, b) => Number(a.time) - Number(b.time));
    this.markers.setMarkers(marks);
  }

  private bar(b: WireBar) {
    return { time: seconds(b.start) as UTCTimestamp, open: price(b.open), high: price(b.high),
             low: price(b.low), close: price(b.close) };
  }
}
