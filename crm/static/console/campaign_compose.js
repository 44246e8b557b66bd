// The compose form's live preview: posts the form as it stands (with its CSRF token) to the console's preview
// view, debounced, and swaps the rendered chat bubble, audience count and next occurrences in. Nothing is saved.
(function () {
  "use strict";
  var DELAY = 400;

  function start() {
    var box = document.getElementById("campaign-preview");
    var form = document.getElementById("campaign_form");
    if (!box || !form) return;
    var timer = null;
    var latest = 0;

    function refresh() {
      var asked = ++latest;
      var data = new FormData(form);
      box.setAttribute("aria-busy", "true");
      fetch(box.dataset.url, {method: "POST", body: data, credentials: "same-origin",
                              headers: {"X-Requested-With": "XMLHttpRequest"}})
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) {
          if (asked !== latest || html === null) return; // only the latest answer is shown
          box.innerHTML = html;
          box.dataset.version = String(asked);
          box.removeAttribute("aria-busy");
        })
        .catch(function () { box.removeAttribute("aria-busy"); });
    }

    function later() {
      clearTimeout(timer);
      timer = setTimeout(refresh, DELAY);
    }

    form.addEventListener("input", later);
    form.addEventListener("change", later);
    // select2 (the groups picker) reports through jQuery only.
    if (window.django && window.django.jQuery) {
      window.django.jQuery(form).on("select2:select select2:unselect", later);
    }
    var button = document.querySelector('[data-testid="preview-refresh"]');
    if (button) button.addEventListener("click", refresh);
    refresh();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
