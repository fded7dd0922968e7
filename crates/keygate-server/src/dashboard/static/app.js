// keygate dashboard: a little progressive enhancement, nothing the pages need to work.
// - Buttons with data-dialog open their <dialog> (without JavaScript they lead to a
//   confirmation page instead). Cancel and Escape close it natively.
// - Buttons with data-copy copy the text of the element they name.
// - Forms with data-once disable their submit buttons once sent, so a double click sends
//   them once (the server refuses a second sending of the same form anyway).
'use strict';

document.addEventListener('submit', function (event) {
  var form = event.target instanceof HTMLFormElement ? event.target : null;
  if (!form || !form.hasAttribute('data-once')) return;
  // After this event: the form's data is taken first, so the sending is not affected.
  setTimeout(function () {
    form.querySelectorAll('button[type="submit"]').forEach(function (b) { b.disabled = true; });
  }, 0);
});

document.addEventListener('click', function (event) {
  var target = event.target instanceof Element ? event.target : null;
  if (!target) return;

  var opener = target.closest('[data-dialog]');
  if (opener) {
    var dialog = document.getElementById(opener.getAttribute('data-dialog'));
    if (dialog && typeof dialog.showModal === 'function') {
      event.preventDefault();
      dialog.showModal();
    }
    return;
  }

  var copier = target.closest('[data-copy]');
  if (copier) {
    var source = document.getElementById(copier.getAttribute('data-copy'));
    var status = document.getElementById('copy-status');
    if (!source) return;
    var text = source.textContent.trim();
    var done = function () { if (status) status.textContent = 'Copied to the clipboard.'; };
    var fallback = function () {
      // Select the text so the person can copy it themselves.
      var range = document.createRange();
      range.selectNodeContents(source);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      if (status) status.textContent = 'Selected: press Ctrl+C (or ⌘C) to copy.';
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, fallback);
    } else {
      fallback();
    }
  }
});
