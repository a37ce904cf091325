// switchboard click-to-call widget. Embed with
//   <script src="https://<server>/widget.js" data-flow="main" async></script>
// Plain JS, no framework; everything lives in a shadow root so the host page's styles and ours
// never mix. The server is the origin this script was loaded from.
(function () {
  'use strict';
  var script = document.currentScript;
  if (!script || !script.src) return;
  var server = new URL(script.src).origin;
  var flow = script.getAttribute('data-flow') || '';

  var host = document.createElement('div');
  host.setAttribute('data-switchboard-widget', '');
  var root = host.attachShadow({ mode: 'open' });
  root.innerHTML = [
    '<style>',
    ':host{all:initial;position:fixed;right:16px;bottom:16px;z-index:2147483000;font:14px/1.4 system-ui,sans-serif;color:#1b1f24}',
    'button{font:inherit;cursor:pointer;border-radius:6px;border:1px solid #0b5cad;background:#0b5cad;color:#fff;padding:6px 12px}',
    'button.ghost{background:#fff;color:#0b5cad}',
    '#open{border-radius:24px;padding:10px 18px;box-shadow:0 2px 8px rgba(0,0,0,.25)}',
    '#panel{width:280px;background:#fff;border:1px solid #c9d1d9;border-radius:10px;padding:12px;box-shadow:0 4px 16px rgba(0,0,0,.2);margin-bottom:8px}',
    '.tabs{display:flex;gap:6px;margin-bottom:10px}.tabs button[aria-selected=false]{background:#fff;color:#0b5cad}',
    'label{display:block;margin:6px 0 2px}input,textarea{box-sizing:border-box;width:100%;font:inherit;padding:5px;border:1px solid #c9d1d9;border-radius:4px}',
    '.keys{display:grid;grid-template-columns:repeat(3,1fr);gap:4px;margin:8px 0}',
    '.status{margin-top:8px;min-height:1.4em}.error{color:#b42318}.ok{color:#067647}',
    '[hidden]{display:none!important}',
    '</style>',
    '<div id="panel" hidden role="dialog" aria-label="Contact us">',
    ' <div class="tabs" role="tablist">',
    '  <button id="tab-call" role="tab" aria-selected="true">Call us</button>',
    '  <button id="tab-cb" role="tab" aria-selected="false">Call me back</button>',
    ' </div>',
    ' <section id="call">',
    '  <div id="host-state" data-state="idle"><div id="call-state" aria-live="polite">Talk to us from this page. Your browser will ask for the microphone.</div></div>',
    '  <div class="keys" id="keys" hidden></div>',
    '  <button id="dial">Call</button> <button id="mute" class="ghost" hidden>Mute</button>',
    '  <button id="hangup" class="ghost" hidden>Hang up</button>',
    '  <div class="status" id="call-status" role="status"></div>',
    ' </section>',
    ' <section id="cb" hidden>',
    '  <form id="cb-form" novalidate>',
    '   <label for="number">Your phone number</label>',
    '   <input id="number" name="number" type="tel" autocomplete="tel" placeholder="+55 11 91234-5678" required>',
    '   <label for="note">Your question</label>',
    '   <textarea id="note" name="note" rows="3" maxlength="500"></textarea>',
    '   <div style="margin-top:8px"><button id="cb-submit" type="submit">Call me back</button></div>',
    '  </form>',
    '  <div class="status" id="cb-status" role="status"></div>',
    ' </section>',
    '</div>',
    '<button id="open" aria-expanded="false">Contact us</button>'
  ].join('');
  (document.body || document.documentElement).appendChild(host);

  function $(id) { return root.getElementById(id); }
  function say(id, text, kind) {
    var el = $(id);
    el.textContent = text;
    el.className = 'status' + (kind ? ' ' + kind : '');
  }

  $('open').addEventListener('click', function () {
    var p = $('panel');
    p.hidden = !p.hidden;
    $('open').setAttribute('aria-expanded', String(!p.hidden));
  });
  function tab(which) {
    $('call').hidden = which !== 'call';
    $('cb').hidden = which !== 'cb';
    $('tab-call').setAttribute('aria-selected', String(which === 'call'));
    $('tab-cb').setAttribute('aria-selected', String(which === 'cb'));
  }
  $('tab-call').addEventListener('click', function () { tab('call'); });
  $('tab-cb').addEventListener('click', function () { tab('cb'); });

  function post(path, body) {
    return fetch(server + path, {
      method: 'POST',
      mode: 'cors',
      credentials: 'omit',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body)
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (json) {
        return { status: res.status, body: json, retry: res.headers.get('Retry-After') };
      });
    });
  }

  function minutes(ms) {
    var m = Math.max(1, Math.round(ms / 60000));
    return m === 1 ? 'about a minute' : 'about ' + m + ' minutes';
  }

  // ---- Call me back -------------------------------------------------------------------------
  $('cb-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var number = $('number').value.trim();
    if (!/^\+?[0-9 ().-]{8,25}$/.test(number)) {
      say('cb-status', 'Please write your number with the country code, e.g. +55 11 91234-5678.', 'error');
      return;
    }
    $('cb-submit').disabled = true;
    say('cb-status', 'Sending…');
    post('/api/widget/callback', { number: number, note: $('note').value })
      .then(function (r) {
        if (r.status === 201) {
          var text = 'Thank you. You are number ' + r.body.position + ' in line; we will call you back';
          text += r.body.estimated_wait_ms ? ' in ' + minutes(r.body.estimated_wait_ms) + '.' : ' as soon as an agent is free.';
          say('cb-status', text, 'ok');
          $('cb-form').hidden = true;
        } else if (r.status === 429) {
          say('cb-status', 'Too many requests; please try again in ' + (r.retry || 60) + ' seconds.', 'error');
        } else {
          say('cb-status', r.body.error || ('The request failed (HTTP ' + r.status + ').'), 'error');
        }
      })
      .catch(function () {
        say('cb-status', 'This site cannot reach our phone system right now.', 'error');
      })
      .then(function () { $('cb-submit').disabled = false; });
  });

  // ---- Call us ------------------------------------------------------------------------------
  // Signalling follows WIDGET.md: POST the SDP offer (ICE gathered) to /api/widget/call; the
  // answer starts the call; its states come as server-sent events; DELETE hangs up.
  var call = null;
  '123456789*0#'.split('').forEach(function (d) {
    var b = document.createElement('button');
    b.className = 'ghost';
    b.textContent = d;
    b.setAttribute('aria-label', 'Key ' + d);
    b.addEventListener('click', function () {
      if (call && call.dtmf) call.dtmf.insertDTMF(d, 120, 60);
    });
    $('keys').appendChild(b);
  });

  function state(text) { $('call-state').textContent = text; }
  function endCall(text) {
    if (call) {
      if (call.events) call.events.close();
      if (call.pc) call.pc.close();
      if (call.stream) call.stream.getTracks().forEach(function (t) { t.stop(); });
      if (call.audio) call.audio.srcObject = null;
    }
    call = null;
    $('keys').hidden = true;
    $('mute').hidden = true;
    $('mute').textContent = 'Mute';
    $('hangup').hidden = true;
    $('dial').hidden = false;
    state(text);
    $('host-state').setAttribute('data-state', 'ended');
  }

  // The server answers without trickle ICE: send the offer once our candidates are in it.
  function gathered(pc) {
    if (pc.iceGatheringState === 'complete') return Promise.resolve();
    return new Promise(function (resolve) {
      var done = function () {
        if (pc.iceGatheringState === 'complete') {
          pc.removeEventListener('icegatheringstatechange', done);
          resolve();
        }
      };
      pc.addEventListener('icegatheringstatechange', done);
      setTimeout(resolve, 3000);
    });
  }

  var WORDS = {
    connecting: 'Connecting…',
    ringing: 'Ringing…',
    in_ivr: 'Connected. Use the keypad to choose.',
    connected: 'You are talking to an agent.'
  };
  function onState(ev) {
    if (!call) return;
    var s;
    try { s = JSON.parse(ev.data); } catch (e) { return; }
    call.state = s.state;
    $('host-state').setAttribute('data-state', s.state);
    if (s.state === 'queued') {
      state(s.position ? 'You are number ' + s.position + ' in line. Please hold.' : 'Please hold for an agent.');
    } else if (s.state === 'ended') {
      var who = s.by === 'agent' ? 'The agent ended the call.' : 'Call ended.';
      endCall(s.reason ? 'Call ended: ' + s.reason : who);
    } else if (WORDS[s.state]) {
      state(WORDS[s.state]);
    }
  }

  $('dial').addEventListener('click', function () {
    if (call) return;
    if (!navigator.mediaDevices || !window.RTCPeerConnection) {
      say('call-status', 'This browser cannot place calls; please use the callback form.', 'error');
      return;
    }
    call = {};
    say('call-status', '');
    $('dial').hidden = true;
    $('hangup').hidden = false;
    state('Asking for the microphone…');
    navigator.mediaDevices.getUserMedia({ audio: true }).then(function (stream) {
      if (!call) { stream.getTracks().forEach(function (t) { t.stop(); }); return null; }
      call.stream = stream;
      var pc = new RTCPeerConnection();
      call.pc = pc;
      stream.getTracks().forEach(function (t) {
        var sender = pc.addTrack(t, stream);
        call.dtmf = sender.dtmf || null;
      });
      pc.ontrack = function (ev) {
        if (!call) return;
        var audio = new Audio();
        audio.srcObject = ev.streams[0] || new MediaStream([ev.track]);
        audio.play().catch(function () {});
        call.audio = audio;
      };
      pc.onconnectionstatechange = function () {
        if (call && call.pc === pc && pc.connectionState === 'failed') {
          endCall('The connection was lost.');
        }
      };
      state('Connecting…');
      return pc.createOffer().then(function (offer) { return pc.setLocalDescription(offer); })
        .then(function () { return gathered(pc); })
        .then(function () { return post('/api/widget/call', { flow: flow, sdp: pc.localDescription.sdp }); })
        .then(function (r) {
          if (!call || call.pc !== pc) return;
          if (r.status === 200 && r.body.sdp) {
            call.id = r.body.call_id;
            call.events = new EventSource(server + r.body.events);
            call.events.addEventListener('state', onState);
            return pc.setRemoteDescription({ type: 'answer', sdp: r.body.sdp }).then(function () {
              $('keys').hidden = false;
              $('mute').hidden = false;
            });
          }
          endCall('Call not placed.');
          var msg = r.status === 429 ? 'Too many calls from here; please try again in ' + (r.retry || 60) + ' seconds.'
            : (r.body.error || ('The call failed (HTTP ' + r.status + ').'));
          say('call-status', msg, 'error');
        });
    }).catch(function (e) {
      endCall('Call not placed.');
      say('call-status', e && e.name === 'NotAllowedError' ? 'The microphone was not allowed.' : 'The call could not start.', 'error');
    });
  });
  $('hangup').addEventListener('click', function () {
    if (call && call.id) {
      fetch(server + '/api/widget/call/' + encodeURIComponent(call.id), {
        method: 'DELETE', mode: 'cors', credentials: 'omit'
      }).catch(function () {});
    }
    endCall('Call ended.');
  });
  $('mute').addEventListener('click', function () {
    if (!call || !call.stream) return;
    var track = call.stream.getAudioTracks()[0];
    if (!track) return;
    track.enabled = !track.enabled;
    $('mute').textContent = track.enabled ? 'Mute' : 'Unmute';
    $('mute').setAttribute('aria-pressed', String(!track.enabled));
  });
})();
