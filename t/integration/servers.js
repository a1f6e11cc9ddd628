'use strict';
/*
 * servers.js: throw-away redis-server and PostgreSQL instances on free
 * ports for the tests of the scale-out backends.  Each is started with
 * a readiness poll and stopped (SIGKILL for Redis, pg_ctl for
 * PostgreSQL) by the test.
 */

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const cp = require('node:child_process');
const L = require('./lib.js');

function haveRedis() {
    return cp.spawnSync('redis-server', ['--version']).status === 0;
}

/* PostgreSQL's binaries: Debian keeps them out of PATH */
function pgBin() {
    const root = '/usr/lib/postgresql';
    if (!fs.existsSync(root)) {
        return null;
    }
    const v = fs.readdirSync(root).sort().pop();
    return v ? `${root}/${v}/bin` : null;
}

/*
 * A redis-server on port with extra command-line arguments (a config
 * line per "--name value..."); {port, child, stop()}.
 */
async function startRedis(port, extra = []) {
    const child = cp.spawn('redis-server',
                           ['--port', String(port), '--save', '',
                            '--appendonly', 'no', '--bind', '127.0.0.1',
                            ...extra],
                           { stdio: 'ignore' });
    const exited = new Promise((r) => child.once('exit', r));
    await L.waitFor(() => {
        if (child.exitCode !== null) {
            throw new Error(`redis-server exited (${child.exitCode})`);
        }
        return L.tcpConnects(port);
    }, 10000, 'redis-server');
    return {
        port,
        child,
        stop: async () => {
            if (child.exitCode === null && child.signalCode === null) {
                child.kill('SIGKILL');
                await exited;
            }
        },
    };
}

/* redis-cli with arguments; its output, trimmed */
function redisCli(port, args) {
    const r = cp.spawnSync('redis-cli', ['-p', String(port), ...args],
                           { encoding: 'utf8', timeout: 10000 });
    if (r.status !== 0) {
        throw new Error(`redis-cli failed: ${r.stderr}`);
    }
    return r.stdout.trim();
}

/*
 * A throw-away PostgreSQL on a free port (as the postgres user when we
 * are root: it refuses to run as root); {port, conninfo, stop(),
 * start(), remove()}.
 */
async function startPostgres() {
    const bin = pgBin();
    const port = await L.freePort();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pushd-pg-'));
    const asPg = process.getuid() === 0;
    const run = (cmd, args) => {
        const full = asPg ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]]
                          : [cmd, args];
        const r = cp.spawnSync(full[0], full[1], { encoding: 'utf8' });
        if (r.status !== 0) {
            throw new Error(`${cmd} failed: ${r.stderr}`);
        }
    };
    if (asPg) {
        cp.spawnSync('chown', ['postgres', dir]);
    }
    run(`${bin}/initdb`, ['-D', `${dir}/data`, '-A', 'trust', '-U',
                          'postgres']);
    const pg = {
        port,
        conninfo: `host=127.0.0.1 port=${port} dbname=postgres user=postgres`,
        /* started again on the same port and data (a restart) */
        start: async () => {
            run(`${bin}/pg_ctl`, ['-D', `${dir}/data`, '-w', '-l',
                                  `${dir}/log`, '-o', `-p ${port} -k ${dir} `
                                  + '-c listen_addresses=127.0.0.1', 'start']);
            await L.waitFor(() => L.tcpConnects(port), 10000, 'postgres');
        },
        /* a fast shutdown: sessions are cut, the data stays */
        stop: () => {
            try {
                run(`${bin}/pg_ctl`, ['-D', `${dir}/data`, '-m', 'fast',
                                      '-w', 'stop']);
            } catch (e) {
                /* not running */
            }
        },
        remove: () => {
            pg.stop();
            fs.rmSync(dir, { recursive: true, force: true });
        },
    };
    await pg.start();
    return pg;
}

module.exports = { haveRedis, pgBin, startRedis, redisCli, startPostgres };
