// tutelage admin pages: confirmations, copying a link, the NDA note, busy buttons.
// Loaded from /static only: the Content-Security-Policy forbids inline scripts. Every
// page works without it; it only adds the conveniences below.
(function () {
  "use strict";

  // <form data-confirm="Remove ada?">: ask before sending.
  // <form data-busy="Importing…">: disable the button while the request runs, so a
  // slow upload is not sent twice.
  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    const question = form.dataset.confirm;
    if (question && !window.confirm(question)) {
      event.preventDefault();
      return;
    }
    const busy = form.dataset.busy;
    if (busy) {
      const button = form.querySelector('button[type="submit"]');
      if (button) {
        // After this handler, so the button's own name and value still go with the form.
        window.setTimeout(function () {
          button.disabled = true;
          button.textContent = busy;
        }, 0);
      }
    }
  });

  // <button data-copy="element-id">: copy that input's value (an invitation link).
  document.addEventListener("click", function (event) {
    const button = event.target instanceof Element ? event.target.closest("[data-copy]") : null;
    if (!button) return;
    const field = document.getElementById(button.dataset.copy);
    if (!field) return;
    field.select();
    const done = function () {
      button.textContent = "Copied";
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done, function () {});
    } else if (document.execCommand && document.execCommand("copy")) {
      done();
    }
  });

  // A refused form is shown again with its reason, maybe far down the page: go there.
  const refusal = document.querySelector('.admin .notice.error[role="alert"]');
  if (refusal) refusal.scrollIntoView({ block: "center" });

  // The project form: say at once that a changed NDA must be accepted again.
  const nda = document.getElementById("nda_text");
  const note = document.getElementById("nda-changed");
  if (nda && note) {
    nda.addEventListener("input", function () {
      note.hidden = nda.value === nda.defaultValue;
    });
  }
})();
