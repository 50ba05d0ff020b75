// Debug builds only (the kit's dev loop, `live/templates/live/datastar_missing.html`): shows
// the page's "Datastar has not loaded" notice when Datastar never ran. Served from this origin,
// so the page's Content-Security-Policy allows it ('self'; nothing inline).
//
// Datastar removes the notice as soon as it starts (the notice's `data-init`). So once the page
// has loaded (its `load` event waits for the Datastar script to arrive or fail), a notice still
// in the page means Datastar did not run. A script that is merely slow to arrive is caught by
// the timer instead; should it run after all, it removes the notice then.
const notice = document.getElementById('datastar-missing');

function show() {
  if (!notice || !notice.isConnected) return;
  // Styled here, through the CSSOM, which the policy allows (it refuses `style` attributes).
  Object.assign(notice.style, {
    position: 'sticky',
    top: '0',
    zIndex: '1000',
    margin: '0',
    padding: '0.75rem 1rem',
    background: '#fef3c7',
    color: '#1f2937',
    borderBottom: '2px solid #b45309',
    font: '1rem/1.4 system-ui, sans-serif',
    overflowWrap: 'anywhere',
  });
  document.body.prepend(notice);
  notice.hidden = false;
}

function later(ms) {
  setTimeout(show, ms);
}

if (document.readyState === 'complete') {
  later(500);
} else {
  window.addEventListener('load', () => later(500));
}
later(5000);
