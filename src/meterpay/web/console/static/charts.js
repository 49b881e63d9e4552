// Charts for the console's read pages: every <figure data-chart="ID"> is drawn with
// ECharts from the JSON in <script type="application/json" id="ID">:
//   {"kind": "bars", "x": [labels], "unit": "¥", "series": [{"name", "data": ["12.34", ...]}]}
// Numbers come as decimal strings (money stays exact on the server); the same figures
// are in a table beside each chart, so a page without script loses nothing.
// console.js replaces <main> when it refreshes: new figures are drawn when they appear.
(function () {
  "use strict";
  var COLORS = ["#1a7f37", "#cf222e", "#0969da", "#bc4c00"];

  function draw(figure) {
    if (figure.dataset.drawn || typeof window.echarts === "undefined") return;
    var source = document.getElementById(figure.dataset.chart);
    if (!source) return;
    var spec;
    try { spec = JSON.parse(source.textContent); } catch (e) { return; }
    figure.dataset.drawn = "1";
    var chart = window.echarts.init(figure, null, { renderer: "svg" });
    chart.setOption({
      color: COLORS,
      animation: false,
      tooltip: { trigger: "axis" },
      legend: { top: 0 },
      grid: { left: 56, right: 16, top: 32, bottom: 28 },
      xAxis: { type: "category", data: spec.x },
      yAxis: { type: "value", name: spec.unit || "" },
      series: (spec.series || []).map(function (s) {
        return { name: s.name, type: spec.kind === "lines" ? "line" : "bar", data: s.data.map(Number) };
      })
    });
    window.addEventListener("resize", function () { chart.resize(); });
  }

  function drawAll() {
    var figures = document.querySelectorAll("figure[data-chart]");
    for (var i = 0; i < figures.length; i++) draw(figures[i]);
  }

  document.addEventListener("DOMContentLoaded", drawAll);
  if (document.readyState !== "loading") drawAll();
  new MutationObserver(drawAll).observe(document.body, { childList: true });
})();
