// Enhancements only: every page works and shows every number without this script.
// Times in the viewer's time zone (the UTC instant stays on hover); numbers in their locale.
(function () {
  "use strict";
  var times = document.querySelectorAll("time[datetime]");
  for (var i = 0; i < times.length; i++) {
    var t = times[i];
    var when = new Date(t.getAttribute("datetime"));
    if (isNaN(when.getTime())) continue;
    t.title = when.toISOString().replace("T", " ").slice(0, 19) + " UTC";
    t.textContent = when.toLocaleString(undefined, {
      year: "numeric", month: "short", day: "numeric",
      hour: "2-digit", minute: "2-digit", second: "2-digit"
    });
  }
  var numbers = document.querySelectorAll("[data-value]");
  for (var j = 0; j < numbers.length; j++) {
    var n = numbers[j];
    var value = Number(n.getAttribute("data-value"));
    var kind = n.getAttribute("data-kind");
    if (n.getAttribute("data-value") === "" || isNaN(value)) continue;
    if (kind === "money") {
      n.textContent = value.toLocaleString(undefined, {
        minimumFractionDigits: 2, maximumFractionDigits: 2
      }) + " " + (n.getAttribute("data-currency") || "");
    } else if (kind === "count") {
      n.textContent = value.toLocaleString(undefined, { maximumFractionDigits: 2 });
    }
  }
})();
