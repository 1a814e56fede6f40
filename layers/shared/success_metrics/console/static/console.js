// Enhancements only: every page works and shows every number without this script.
// - times in the viewer's time zone (the UTC instant stays on hover);
// - numbers in the viewer's locale (the exact value is the <data value> the server wrote);
// - a range form (From / To / metric / granularity) shows its answer without a page reload,
//   the address bar following (Back works), and falls back to a normal load on any failure.
(function () {
  "use strict";

  function times(root) {
    var found = root.querySelectorAll("time[datetime]");
    for (var i = 0; i < found.length; i++) {
      var t = found[i];
      var when = new Date(t.getAttribute("datetime"));
      if (isNaN(when.getTime())) continue;
      t.title = when.toISOString().replace("T", " ").slice(0, 19) + " UTC";
      t.textContent = when.toLocaleString(undefined, {
        year: "numeric", month: "short", day: "numeric",
        hour: "2-digit", minute: "2-digit", second: "2-digit"
      });
    }
  }

  function formatted(value, kind, currency) {
    if (kind === "money") {
      if (/^[A-Z]{3}$/.test(currency)) {
        try {
          return value.toLocaleString(undefined, { style: "currency", currency: currency });
        } catch (e) { /* an unknown code: the plain form below */ }
      }
      return value.toLocaleString(undefined, {
        minimumFractionDigits: 2, maximumFractionDigits: 2
      }) + (currency ? " " + currency : "");
    }
    if (kind === "ratio" && Math.abs(value) < 10) {
      return value.toLocaleString(undefined, { style: "percent", maximumFractionDigits: 1 });
    }
    if (kind === "coefficient") {
      return value.toLocaleString(undefined, { maximumFractionDigits: 4 });
    }
    return value.toLocaleString(undefined, { maximumFractionDigits: 2 });
  }

  function numbers(root) {
    var found = root.querySelectorAll("data[value]");
    for (var i = 0; i < found.length; i++) {
      var n = found[i];
      var text = n.getAttribute("value");
      var value = Number(text);
      if (text === "" || !isFinite(value)) continue;
      n.title = n.textContent;  // the server's English form, on hover
      n.textContent = formatted(value, n.getAttribute("data-kind"), n.getAttribute("data-currency") || "");
    }
  }

  function enhance(root) {
    times(root);
    numbers(root);
  }

  var main = document.getElementById("main");

  function show(url, push) {
    main.setAttribute("aria-busy", "true");
    return fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (answer) {
        if (!answer.ok || answer.redirected) throw new Error("HTTP " + answer.status);
        return answer.text();
      })
      .then(function (html) {
        var page = new DOMParser().parseFromString(html, "text/html");
        var fresh = page.getElementById("main");
        if (!fresh) throw new Error("no main");
        main.innerHTML = fresh.innerHTML;
        document.title = page.title;
        if (push) history.pushState({ console: true }, "", url);
        main.removeAttribute("aria-busy");
        enhance(main);
        bind(main);
        var heading = main.querySelector("h1");
        if (heading) {
          heading.setAttribute("tabindex", "-1");
          heading.focus();
        }
      })
      .catch(function () { window.location.assign(url); });
  }

  function bind(root) {
    var forms = root.querySelectorAll("form.range[method=get][data-live]");
    for (var i = 0; i < forms.length; i++) {
      forms[i].addEventListener("submit", function (event) {
        var form = event.currentTarget;
        if (!form.checkValidity()) return;
        event.preventDefault();
        var query = new URLSearchParams(new FormData(form)).toString();
        show(form.getAttribute("action") + (query ? "?" + query : ""), true);
      });
    }
  }

  window.addEventListener("popstate", function (event) {
    if (event.state && event.state.console) show(window.location.href, false);
  });
  if (main && window.fetch && window.history && window.DOMParser) {
    history.replaceState({ console: true }, "", window.location.href);
    bind(document);
  }
  enhance(document);
})();
