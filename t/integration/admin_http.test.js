'use strict';
/*
 * admin_http.test.js: the admin page's files over HTTP on the center
 * listener: served without the key (GET, HEAD), byte for byte what
 * src/modules/center/admin/ holds, with their content types and the
 * security headers; nothing else opened up (other methods, other paths,
 * the API itself still need the key).  The page in a browser is
 * browser.test.js.
 */

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const L = require('./lib.js');

const DIR = path.resolve(__dirname, '..', '..', 'src', 'modules', 'center',
                         'admin');

test('GET /admin/ and its files without the key; nothing else opened', 
     { timeout: 60000 }, async () => {
    await L.withPushd({ workers: 1 }, async (d) => {
        const get = (p, method = 'GET', h = {}) =>
            L.request(d.centerPort, method, p, h);
        const index = await get('/admin/');
        assert.equal(index.status, 200);
        assert.equal(index.headers['content-type'], 'text/html; charset=utf-8');
        assert.match(index.headers['content-security-policy'],
                     /default-src 'none'; script-src 'self'/);
        assert.equal(index.headers['x-frame-options'], 'DENY');
        assert.equal(index.body,
                     fs.readFileSync(path.join(DIR, 'index.html'), 'utf8'));
        assert.equal((await get('/admin')).body, index.body);
        for (const [f, type] of [['admin.js', 'text/javascript'],
                                 ['admin.css', 'text/css']]) {
            const r = await get(`/admin/${f}`);
            assert.equal(r.status, 200, f);
            assert.equal(r.headers['content-type'], `${type}; charset=utf-8`);
            assert.equal(r.body, fs.readFileSync(path.join(DIR, f), 'utf8'));
        }
        /* HEAD: the GET's head, no body (curl, which knows HEAD) */
        const head = L.curl(['-I', `http://127.0.0.1:${d.centerPort}/admin/`]);
        assert.equal(head.code, 200);
        assert.match(head.body, /Content-Length: \d+/);
        assert.doesNotMatch(head.body, /<html/);
        assert.equal((await get('/admin/nothing.js')).status, 404);
        assert.equal((await get('/admin/../v1/stats')).status, 404);
        /* the key is still needed for everything else */
        for (const [m, p] of [['POST', '/admin/'], ['GET', '/adminx'],
                              ['GET', '/v1/stats'], ['GET', '/metrics']]) {
            const r = await get(p, m, m === 'POST'
                ? { 'Content-Length': 0 } : {});
            assert.equal(r.status, 401, `${m} ${p} without the key`);
        }
    });
});
