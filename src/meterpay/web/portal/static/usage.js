// The usage page's two bar charts (use and cost by day and by month), drawn by ECharts
// from the numbers the page carries (#usage-data); the same numbers are in the tables,
// so nothing is lost without script. ECharts is served by meterpay (no CDN).
(function () {
  "use strict";
  var me = document.currentScript;
  function draw() {
    var source = document.getElementById("usage-data");
    if (!source || !window.echarts) return;
    var data = JSON.parse(source.textContent);
    var names = { quantity: me.dataset.quantity, cost: me.dataset.cost };
    document.querySelectorAll(".chart[data-series]").forEach(function (box) {
      var rows = data[box.dataset.series] || [];
      var chart = window.echarts.init(box, null, { renderer: "canvas" });
      chart.setOption({
        animation: false,
        grid: { left: 40, right: 40, top: 30, bottom: 30 },
        tooltip: { trigger: "axis" },
        legend: { top: 0, data: [names.quantity + " (" + data.unit + ")", names.cost + " (¥)"] },
        xAxis: { type: "category", data: rows.map(function (r) { return r[0].length > 7 ? r[0].slice(5) : r[0]; }) },
        yAxis: [{ type: "value", name: data.unit }, { type: "value", name: "¥" }],
        series: [
          { name: names.quantity + " (" + data.unit + ")", type: "bar", data: rows.map(function (r) { return Number(r[1]); }) },
          { name: names.cost + " (¥)", type: "line", yAxisIndex: 1, data: rows.map(function (r) { return Number(r[2]); }) }
        ]
      });
      window.addEventListener("resize", function () { chart.resize(); });
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
