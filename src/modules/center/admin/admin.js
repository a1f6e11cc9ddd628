/*
 * admin.js: the admin page of the center listener.  It uses only the
 * public center API, with the key the operator typed (or gave as a
 * #key= fragment, which browsers never send to a server): /v1/stats,
 * /metrics, /v1/users/{uid}, /v1/users/{uid}/kick, /v1/push and
 * /v1/broadcast.  Everything shown is set with textContent: uids, devices
 * and error texts come from clients and must not become markup.
 */
'use strict';

(function () {
    var key = null;
    var timer = null;
    var prev = null;          /* the last sample: {t, totals, buckets} */
    var $ = function (id) { return document.getElementById(id); };

    function el(tag, text, cls) {
        var e = document.createElement(tag);
        if (text !== undefined) {
            e.textContent = String(text);
        }
        if (cls) {
            e.className = cls;
        }
        return e;
    }

    function api(method, path, body) {
        var init = { method: method, headers: { Authorization: 'Bearer ' + key },
                     cache: 'no-store' };
        if (body !== undefined) {
            init.headers['Content-Type'] = 'application/json';
            init.body = typeof body === 'string' ? body : JSON.stringify(body);
        }
        return fetch(path, init).then(function (r) {
            return r.text().then(function (text) {
                if (!r.ok) {
                    var msg = text;
                    try { msg = JSON.parse(text).error || text; } catch (e) {}
                    var err = new Error(r.status + ' ' + msg);
                    err.status = r.status;
                    throw err;
                }
                return text;
            });
        });
    }

    /* Prometheus text: {name: [{labels: {..}, value}]} */
    function parseMetrics(text) {
        var out = {};
        text.split('\n').forEach(function (line) {
            var m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
            if (!m) {
                return;
            }
            var labels = {};
            (m[3] || '').replace(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g,
                                 function (_, k, v) { labels[k] = v; });
            (out[m[1]] = out[m[1]] || []).push({ labels: labels,
                                                 value: Number(m[4]) });
        });
        return out;
    }

    function sum(metrics, name) {
        return (metrics[name] || []).reduce(function (n, s) {
            return n + s.value;
        }, 0);
    }

    function fmt(n) {
        if (n >= 1e9) { return (n / 1e9).toFixed(1) + 'G'; }
        if (n >= 1e6) { return (n / 1e6).toFixed(1) + 'M'; }
        if (n >= 1e4) { return (n / 1e3).toFixed(1) + 'k'; }
        return String(Math.round(n * 10) / 10);
    }

    function setStatus(text, cls) {
        var s = $('status');
        s.textContent = text;
        s.className = cls || 'muted';
    }

    function showWorkers(stats, rates) {
        var tb = $('workers').tBodies[0];
        tb.textContent = '';
        stats.workers.forEach(function (w) {
            var tr = el('tr');
            tr.dataset.slot = w.slot;
            [w.slot, w.pid, new Date(w.started * 1000).toLocaleString(),
             w.connections, w.websockets,
             rates ? fmt(rates['in' + w.slot] || 0) : '-',
             rates ? fmt(rates['out' + w.slot] || 0) : '-'
            ].forEach(function (v) { tr.appendChild(el('td', v)); });
            tb.appendChild(tr);
        });
        $('connections').textContent = stats.connections;
        $('websockets').textContent = stats.workers.reduce(function (n, w) {
            return n + w.websockets;
        }, 0);
        $('node').textContent = stats.node;
        $('version').textContent = stats.version;
    }

    var TOTALS = {
        accepted: 'pushd_messages_accepted_total',
        delivered: 'pushd_messages_delivered_total',
        acked: 'pushd_messages_acked_total',
        redelivered: 'pushd_messages_redelivered_total'
    };

    function showLatency(m, old) {
        var buckets = (m.pushd_delivery_latency_ms_bucket || []).map(
            function (s) { return { le: s.labels.le, n: s.value }; });
        var box = $('latency');
        box.textContent = '';
        /* cumulative counts -> per bucket, of this interval only */
        var counts = buckets.map(function (b, i) {
            var n = b.n - (i > 0 ? buckets[i - 1].n : 0);
            if (old && old[i] !== undefined) {
                n -= old[i] - (i > 0 ? old[i - 1] : 0);
            }
            return Math.max(0, n);
        });
        var max = Math.max.apply(null, counts.concat([1]));
        buckets.forEach(function (b, i) {
            var bar = el('div');
            bar.style.height = (100 * counts[i] / max) + '%';
            bar.title = '<= ' + b.le + ' ms: ' + counts[i];
            bar.dataset.le = b.le;
            bar.dataset.count = counts[i];
            bar.appendChild(el('span', b.le === '+Inf' ? 'inf' : b.le));
            box.appendChild(bar);
        });
        var total = sum(m, 'pushd_delivery_latency_ms_count');
        var ms = sum(m, 'pushd_delivery_latency_ms_sum');
        $('latencySummary').textContent = total
            ? 'since start: ' + total + ' deliveries, mean '
              + (ms / total).toFixed(2) + ' ms'
            : 'no delivery yet';
        return buckets.map(function (b) { return b.n; });
    }

    function showStores(m) {
        var tb = $('stores').tBodies[0];
        tb.textContent = '';
        var cap = sum(m, 'pushd_store_capacity_bytes');
        var used = sum(m, 'pushd_store_bytes');
        var rows = [
            ['stored messages', sum(m, 'pushd_store_messages')],
            ['store use', m.pushd_store_capacity_bytes
                ? fmt(used) + 'B of ' + fmt(cap) + 'B ('
                  + (cap ? (100 * used / cap).toFixed(1) : 0) + ' %)'
                : 'no memory store'],
            ['pushes refused, store full', sum(m, 'pushd_store_full_total')],
            ['expired', sum(m, 'pushd_store_expired_total')],
            ['dropped without ack', sum(m, 'pushd_store_dropped_noack_total')],
            ['mailbox full', sum(m, 'pushd_store_mailbox_full_total')],
            ['queued output', fmt(sum(m, 'pushd_output_queued_bytes')) + 'B']
        ];
        rows.forEach(function (r) {
            var tr = el('tr');
            tr.appendChild(el('td', r[0]));
            tr.appendChild(el('td', r[1]));
            tb.appendChild(tr);
        });
    }

    function refresh() {
        Promise.all([api('GET', '/v1/stats'), api('GET', '/metrics')])
            .then(function (res) {
                var stats = JSON.parse(res[0]);
                var m = parseMetrics(res[1]);
                var now = Date.now();
                var totals = {};
                Object.keys(TOTALS).forEach(function (k) {
                    totals[k] = sum(m, TOTALS[k]);
                });
                stats.workers.forEach(function (w) {
                    totals['in' + w.slot] = w.frames_in;
                    totals['out' + w.slot] = w.frames_out;
                });
                var rates = null;
                if (prev) {
                    var dt = (now - prev.t) / 1000;
                    rates = {};
                    Object.keys(totals).forEach(function (k) {
                        rates[k] = Math.max(0, (totals[k] - (prev.totals[k] || 0))
                                            / dt);
                    });
                }
                showWorkers(stats, rates);
                Object.keys(TOTALS).forEach(function (k) {
                    $('t_' + k).textContent = totals[k];
                    $('r_' + k).textContent = rates ? fmt(rates[k]) : '-';
                });
                var buckets = showLatency(m, prev && prev.buckets);
                showStores(m);
                prev = { t: now, totals: totals, buckets: buckets };
                setStatus('live, ' + new Date().toLocaleTimeString(), 'ok');
            })
            .catch(function (e) {
                setStatus(e.message, 'error');
                if (e.status === 401) {
                    logout('the key was refused');
                }
            });
    }

    function logout(why) {
        clearInterval(timer);
        key = null;
        $('main').hidden = true;
        $('login').hidden = false;
        $('loginError').textContent = why || '';
    }

    function login(k) {
        key = k;
        api('GET', '/v1/stats').then(function () {
            $('login').hidden = true;
            $('main').hidden = false;
            prev = null;
            refresh();
            timer = setInterval(refresh, 2000);
        }, function (e) {
            logout(e.status === 401 ? 'the key was refused' : e.message);
        });
    }

    function lookup(uid) {
        var box = $('user');
        box.textContent = 'looking up...';
        return api('GET', '/v1/users/' + encodeURIComponent(uid)).then(function (t) {
            var u = JSON.parse(t);
            box.textContent = '';
            box.appendChild(el('p', u.uid + ': ' + (u.online ? 'online'
                : 'offline'), u.online ? 'ok' : 'muted'));
            var table = el('table');
            table.id = 'connectionsOf';
            u.connections.forEach(function (c) {
                var tr = el('tr');
                tr.appendChild(el('td', c.device));
                tr.appendChild(el('td', (c.apps || []).join(',')));
                tr.appendChild(el('td', c.node + ' / worker ' + c.worker));
                tr.appendChild(el('td', new Date(c.since).toLocaleString()));
                var td = el('td');
                var b = el('button', 'kick');
                b.onclick = function () {
                    api('POST', '/v1/users/' + encodeURIComponent(uid)
                        + '/kick', { device: c.device,
                                     reason: 'kicked from the admin page' })
                        .then(function () { lookup(uid); },
                              function (e) { box.appendChild(
                                  el('p', e.message, 'error')); });
                };
                td.appendChild(b);
                tr.appendChild(td);
                table.appendChild(tr);
            });
            box.appendChild(table);
        }, function (e) {
            box.textContent = '';
            box.appendChild(el('p', e.message, 'error'));
        });
    }

    function send() {
        var out = $('sent');
        var data;
        try {
            data = JSON.parse($('data').value);
        } catch (e) {
            out.textContent = 'data is not JSON: ' + e.message;
            out.className = 'error';
            return;
        }
        var kind = $('kind').value;
        var body = { app: $('app').value, data: data,
                     qos: Number($('qos').value) };
        if (kind === 'push') {
            body.uids = $('uids').value.split(',').map(function (s) {
                return s.trim();
            }).filter(Boolean);
        }
        api('POST', '/v1/' + kind, body).then(function (t) {
            out.textContent = t;
            out.className = 'ok';
        }, function (e) {
            out.textContent = e.message;
            out.className = 'error';
        });
    }

    $('login').onsubmit = function (ev) {
        ev.preventDefault();
        login($('key').value);
    };
    $('lookup').onsubmit = function (ev) {
        ev.preventDefault();
        lookup($('uid').value.trim());
    };
    $('send').onsubmit = function (ev) {
        ev.preventDefault();
        send();
    };

    /* #key=...: taken, then removed from the address bar and history */
    function fromFragment() {
        var m = /(?:^#|&)key=([^&]*)/.exec(location.hash);
        if (m) {
            history.replaceState(null, '', location.pathname + location.search);
            clearInterval(timer);
            login(decodeURIComponent(m[1]));
        }
    }

    window.addEventListener('hashchange', fromFragment);
    fromFragment();

    window.pushdAdmin = { refresh: refresh, lookup: lookup, send: send };
})();
