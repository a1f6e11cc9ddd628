/*
 * pd_center_admin.c: GET /admin/ on the center listener, the admin page.
 *
 * Its HTML, CSS and JS are compiled into the binary (auto/embed writes
 * objs/pd_center_admin_files.c from src/modules/center/admin/), so the
 * page needs no installed directory and always matches its binary's API.
 * The files are public and hold no data: the page asks for the API key
 * and calls the same API as any client (/v1/stats, /metrics, /v1/users,
 * /v1/push, /v1/broadcast) with it; there is no admin-only endpoint.
 * center.allow still applies (at accept, before this).
 */

#include "pd_core.h"
#include "pd_center.h"

/*
 * The page talks only to its own origin, runs only its own script and
 * cannot be framed (clickjacking a kick button); no referrer leaves it.
 */
static const char  pd_center_admin_headers[] =
    "Cache-Control: no-cache\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "X-Frame-Options: DENY\r\n"
    "Referrer-Policy: no-referrer\r\n"
    "Content-Security-Policy: default-src 'none'; script-src 'self'; "
    "style-src 'self'; connect-src 'self'; img-src 'self'; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'\r\n";

/* "/admin" and everything under "/admin/" */
pd_int_t
pd_center_is_admin(pd_http_conn_t *hc)
{
    pd_str_t  *p = &hc->req.path;

    if (p->len < sizeof("/admin") - 1
        || memcmp(p->data, "/admin", sizeof("/admin") - 1) != 0)
    {
        return 0;
    }

    return p->len == sizeof("/admin") - 1
           || p->data[sizeof("/admin") - 1] == '/';
}

void
pd_center_admin(pd_http_conn_t *hc)
{
    const pd_center_file_t  *f;
    pd_str_t                *p = &hc->req.path;
    const char              *want;
    size_t                   len;

    if (hc->req.method != PD_HTTP_GET && hc->req.method != PD_HTTP_HEAD) {
        (void) pd_http_send_error(hc, 405, "method not allowed");
        return;
    }

    if (p->len == sizeof("/admin") - 1 || p->len == sizeof("/admin/") - 1) {
        want = "/admin/index.html";
        len = sizeof("/admin/index.html") - 1;

    } else {
        want = (const char *) p->data;
        len = p->len;
    }

    for (f = pd_center_admin_files; f->path != NULL; f++) {
        if (strlen(f->path) == len && memcmp(f->path, want, len) == 0) {
            (void) pd_http_send_response(hc, 200, f->type,
                                         pd_center_admin_headers,
                                         f->data, f->len);
            return;
        }
    }

    (void) pd_http_send_error(hc, 404, "not found");
}
