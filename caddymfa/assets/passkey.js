// Passkeys on the sign-in pages: asks the server for the options, hands
// them to navigator.credentials, and posts the answer back as WebAuthn
// Level 3 JSON (binary fields in base64url without padding). Served from
// path_prefix under a Content-Security-Policy that allows no other script.
(function () {
  'use strict';
  var script = document.currentScript;
  var prefix = script ? script.getAttribute('data-prefix') : '';

  function toBuf(s) {
    s = s.replace(/-/g, '+').replace(/_/g, '/');
    while (s.length % 4) { s += '='; }
    var bin = atob(s);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    return out.buffer;
  }

  function toB64(buf) {
    var bytes = new Uint8Array(buf);
    var bin = '';
    for (var i = 0; i < bytes.length; i++) { bin += String.fromCharCode(bytes[i]); }
    return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  function showError(msg) {
    var el = document.querySelector('[data-passkey-error]');
    if (!el) { return; }
    el.textContent = msg;
    el.hidden = false;
  }

  function getOptions(path) {
    return fetch(prefix + path, { headers: { Accept: 'application/json' }, credentials: 'same-origin' })
      .then(function (r) {
        return r.json().then(function (j) {
          if (!r.ok) { throw new Error(j.message || 'The request failed.'); }
          return j;
        });
      });
  }

  function post(path, body, csrf) {
    return fetch(prefix + path, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'X-CSRF-Token': csrf },
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().then(function (j) {
        if (!r.ok) { throw new Error(j.message || 'The request failed.'); }
        return j;
      });
    });
  }

  function descriptors(list) {
    return (list || []).map(function (c) {
      var d = { type: c.type, id: toBuf(c.id) };
      if (c.transports) { d.transports = c.transports; }
      return d;
    });
  }

  function credentialJSON(c) {
    var r = c.response;
    var out = { id: c.id, rawId: toB64(c.rawId), type: c.type, response: { clientDataJSON: toB64(r.clientDataJSON) }, clientExtensionResults: {} };
    if (c.authenticatorAttachment) { out.authenticatorAttachment = c.authenticatorAttachment; }
    if (r.attestationObject) {
      out.response.attestationObject = toB64(r.attestationObject);
      if (r.getTransports) { out.response.transports = r.getTransports(); }
    } else {
      out.response.authenticatorData = toB64(r.authenticatorData);
      out.response.signature = toB64(r.signature);
      if (r.userHandle) { out.response.userHandle = toB64(r.userHandle); }
    }
    return out;
  }

  function failed(err) {
    if (err && err.name === 'NotAllowedError') {
      showError('The passkey request was cancelled or timed out. Try again.');
      return;
    }
    showError((err && err.message) || 'The passkey could not be used.');
  }

  function signIn() {
    if (!window.PublicKeyCredential) { showError('This browser does not support passkeys.'); return; }
    var csrf;
    getOptions('/passkey/login').then(function (o) {
      csrf = o.csrf_token;
      var pk = o.publicKey;
      pk.challenge = toBuf(pk.challenge);
      pk.allowCredentials = descriptors(pk.allowCredentials);
      return navigator.credentials.get({ publicKey: pk });
    }).then(function (cred) {
      return post('/passkey/login', { credential: credentialJSON(cred) }, csrf);
    }).then(function (j) {
      window.location.assign(j.redirect || '/');
    }).catch(failed);
  }

  function register(form) {
    if (!window.PublicKeyCredential) { showError('This browser does not support passkeys.'); return; }
    var name = form.querySelector('[name=name]').value;
    var csrf;
    getOptions('/passkey/register').then(function (o) {
      csrf = o.csrf_token;
      var pk = o.publicKey;
      pk.challenge = toBuf(pk.challenge);
      pk.user.id = toBuf(pk.user.id);
      pk.excludeCredentials = descriptors(pk.excludeCredentials);
      return navigator.credentials.create({ publicKey: pk });
    }).then(function (cred) {
      return post('/passkey/register', { name: name, credential: credentialJSON(cred) }, csrf);
    }).then(function (j) {
      if (j.redirect) { window.location.assign(j.redirect); } else { window.location.reload(); }
    }).catch(failed);
  }

  document.addEventListener('click', function (e) {
    var b = e.target.closest && e.target.closest('[data-passkey-login]');
    if (b) { e.preventDefault(); signIn(); }
  });
  document.addEventListener('submit', function (e) {
    if (e.target.hasAttribute('data-passkey-register')) { e.preventDefault(); register(e.target); }
  });
})();
