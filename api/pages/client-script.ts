// The pages' only script (served as /assets/app.js): copy buttons, confirmations, a chosen option's words,
// showing a hidden secret. Pages work without it.
export const CLIENT_SCRIPT = `'use strict';
document.addEventListener('click', async function (event) {
  var button = event.target.closest && event.target.closest('[data-copy]');
  if (!button) return;
  var source = document.getElementById(button.getAttribute('data-copy'));
  if (!source) return;
  var text = 'value' in source ? source.value : source.textContent;
  var status = document.getElementById(button.getAttribute('data-status') || '');
  try {
    await navigator.clipboard.writeText(text);
    if (status) status.textContent = 'Copied to the clipboard.';
    button.textContent = 'Copied';
  } catch (err) {
    if (source.select) source.select();
    if (status) status.textContent = 'Select the text and copy it by hand.';
  }
});
document.addEventListener('submit', function (event) {
  var message = event.target.getAttribute('data-confirm');
  if (message && !window.confirm(message)) event.preventDefault();
});
document.addEventListener('change', function (event) {
  var select = event.target;
  var id = select.getAttribute && select.getAttribute('data-describe');
  if (!id || !select.selectedOptions || !select.selectedOptions[0]) return;
  var target = document.getElementById(id);
  if (target) target.textContent = select.selectedOptions[0].getAttribute('data-words') || '';
});
`;
