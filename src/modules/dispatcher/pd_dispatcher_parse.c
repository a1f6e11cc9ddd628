/*
 * pd_dispatcher_parse.c: the dispatcher's pure parsers: room addresses
 * ("host:port [ssl]"), idc and net names, a request's query, and the
 * text a cluster node publishes about itself.  They return a phrase on
 * error and never log, so that unit tests and fuzzers can drive them.
 */

#include "pd_core.h"
#include "pd_dispatcher.h"

/* a decoded failed= list: every address at its longest, and commas */
#define PD_DISPATCH_FAILED_SIZE                                              \
    (PD_DISPATCH_FAILED_MAX * PD_DISPATCH_TEXT_SIZE)

static pd_uint_t
pd_dispatch_host_char(u_char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
           || (ch >= '0' && ch <= '9') || ch == '.' || ch == '-';
}

static pd_uint_t
pd_dispatch_v6_char(u_char ch)
{
    return (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F')
           || (ch >= '0' && ch <= '9') || ch == ':' || ch == '.';
}

const char *
pd_dispatch_parse_addr(const u_char *p, size_t len, pd_uint_t allow_ssl,
    pd_dispatch_addr_t *a)
{
    const u_char  *host, *port, *last;
    size_t         hlen, i;
    pd_uint_t      v6, n;
    u_char        *t;

    pd_memzero(a, sizeof(pd_dispatch_addr_t));

    last = p + len;

    if (allow_ssl && len > 4 && memcmp(last - 4, " ssl", 4) == 0) {
        a->ssl = 1;
        last -= 4;

        while (last > p && last[-1] == ' ') {
            last--;
        }
    }

    if (last == p) {
        return "is empty";
    }

    v6 = (*p == '[');

    if (v6) {
        host = p + 1;
        port = memchr(host, ']', (size_t) (last - host));
        if (port == NULL || port + 1 >= last || port[1] != ':') {
            return "must be \"[IPv6]:port\"";
        }

        hlen = (size_t) (port - host);
        port += 2;

    } else {
        host = p;
        for (port = last; port > p && port[-1] != ':'; port--) {
            /* void */
        }

        if (port == p) {
            return "must be \"host:port\"";
        }

        hlen = (size_t) (port - 1 - host);
    }

    if (hlen == 0) {
        return "has no host";
    }

    if (hlen > PD_DISPATCH_HOST_MAX) {
        return "has a host longer than 64 bytes";
    }

    for (i = 0; i < hlen; i++) {
        if (v6 ? !pd_dispatch_v6_char(host[i])
               : !pd_dispatch_host_char(host[i]))
        {
            return v6 ? "has a bad IPv6 address"
                      : "has a bad host (an IPv6 address goes in [])";
        }
    }

    if (port == last || last - port > 5) {
        return "has a bad port";
    }

    n = 0;
    for ( /* void */ ; port < last; port++) {
        if (*port < '0' || *port > '9') {
            return "has a bad port";
        }
        n = n * 10 + (pd_uint_t) (*port - '0');
    }

    if (n == 0 || n > 65535) {
        return "has a port outside 1-65535";
    }

    /* names compare without case: the text is kept in lower case */
    t = a->text;
    if (v6) {
        *t++ = '[';
    }

    for (i = 0; i < hlen; i++) {
        *t++ = pd_tolower(host[i]);
    }

    if (v6) {
        *t++ = ']';
    }

    t = pd_slprintf(t, a->text + sizeof(a->text) - 1, ":%u", (unsigned) n);
    *t = '\0';

    a->len = (uint8_t) (t - a->text);
    a->port = (uint16_t) n;

    return NULL;
}

const char *
pd_dispatch_parse_name(const u_char *p, size_t len, pd_dispatch_name_t *n)
{
    size_t  i;

    if (len == 0 || len > PD_DISPATCH_NAME_MAX) {
        return "must be a name of 1 to 32 bytes";
    }

    for (i = 0; i < len; i++) {
        if (!pd_dispatch_host_char(p[i]) && p[i] != '_') {
            return "must be a name of [A-Za-z0-9._-]";
        }
    }

    pd_memcpy(n->name, p, len);
    n->len = (uint8_t) len;

    return NULL;
}

/* the decoded value of a query argument into buf; *len 0 when absent */
static pd_int_t
pd_dispatch_arg(pd_str_t *args, const char *name, u_char *buf, size_t size,
    size_t *len)
{
    pd_str_t  raw;

    *len = 0;

    if (pd_http_arg(args, name, &raw) != PD_OK || raw.len == 0) {
        return PD_OK;
    }

    /* an escape decodes to one byte, so size bytes of text is enough */
    if (raw.len > size) {
        return PD_ERROR;
    }

    return pd_http_unescape(&raw, buf, len);
}

static const char *
pd_dispatch_parse_failed(u_char *p, size_t len, pd_dispatch_query_t *q)
{
    u_char       *last, *comma;
    pd_uint_t     i;
    const char   *err;

    last = p + len;

    for ( /* void */ ; p < last; p = comma + 1) {
        comma = memchr(p, ',', (size_t) (last - p));
        if (comma == NULL) {
            comma = last;
        }

        if (comma == p) {
            continue;
        }

        if (q->nfailed == PD_DISPATCH_FAILED_MAX) {
            return "\"failed\" names more than 16 addresses";
        }

        err = pd_dispatch_parse_addr(p, (size_t) (comma - p), 0,
                                     &q->failed[q->nfailed]);
        if (err != NULL) {
            return "\"failed\" must be a list of host:port";
        }

        /* a repeated one counts once */
        for (i = 0; i < q->nfailed; i++) {
            if (q->failed[i].len == q->failed[q->nfailed].len
                && memcmp(q->failed[i].text, q->failed[q->nfailed].text,
                          q->failed[i].len) == 0)
            {
                break;
            }
        }

        if (i == q->nfailed) {
            q->nfailed++;
        }
    }

    return NULL;
}

const char *
pd_dispatch_parse_query(pd_str_t *args, pd_dispatch_query_t *q)
{
    u_char     buf[PD_DISPATCH_FAILED_SIZE];
    size_t     len;
    pd_str_t   uid;

    q->uid_len = 0;
    q->net.len = 0;
    q->nfailed = 0;

    if (pd_dispatch_arg(args, "uid", buf, PD_UID_MAX * 3, &len) != PD_OK) {
        return "\"uid\" must be a name of [A-Za-z0-9._:@-]";
    }

    if (len == 0) {
        return "\"uid\" is missing";
    }

    uid.data = buf;
    uid.len = len;

    if (pd_token_valid_name(&uid, PD_UID_MAX) != PD_OK) {
        return "\"uid\" must be a name of [A-Za-z0-9._:@-]";
    }

    pd_memcpy(q->uid, buf, len);
    q->uid_len = len;

    if (pd_dispatch_arg(args, "net", buf, PD_DISPATCH_NAME_MAX * 3, &len)
        != PD_OK
        || (len && pd_dispatch_parse_name(buf, len, &q->net) != NULL))
    {
        return "\"net\" must be a name such as wifi or cell";
    }

    if (pd_dispatch_arg(args, "failed", buf, sizeof(buf), &len) != PD_OK) {
        return "\"failed\" is too long or badly escaped";
    }

    return pd_dispatch_parse_failed(buf, len, q);
}

/*
 * What a cluster node publishes: "idc\tweight\tnet,net\taddr,addr ssl"
 * (idc and nets may be empty).  The identity is set by the reader.
 */
size_t
pd_dispatch_node_text(const pd_dispatch_node_t *n, u_char *buf, size_t size)
{
    u_char     *p, *last;
    pd_uint_t   i;

    p = buf;
    last = buf + size;

    p = pd_slprintf(p, last, "%.*s\t%u\t", (int) n->idc.len, n->idc.name,
                    (unsigned) n->weight);

    for (i = 0; i < n->nnets; i++) {
        p = pd_slprintf(p, last, "%s%.*s", i ? "," : "",
                        (int) n->nets[i].len, n->nets[i].name);
    }

    p = pd_slprintf(p, last, "\t");

    for (i = 0; i < n->naddrs; i++) {
        p = pd_slprintf(p, last, "%s%.*s%s", i ? "," : "",
                        (int) n->addrs[i].len, n->addrs[i].text,
                        n->addrs[i].ssl ? " ssl" : "");
    }

    return (size_t) (p - buf);
}

/* the next tab-separated field of [*p, last) */
static pd_int_t
pd_dispatch_field(const u_char **p, const u_char *last, pd_str_t *f,
    pd_uint_t final)
{
    const u_char  *tab;

    tab = memchr(*p, '\t', (size_t) (last - *p));

    if (final ? tab != NULL : tab == NULL) {
        return PD_ERROR;
    }

    if (tab == NULL) {
        tab = last;
    }

    f->data = (u_char *) *p;
    f->len = (size_t) (tab - *p);
    *p = tab + (tab < last);

    return PD_OK;
}

const char *
pd_dispatch_node_parse(const u_char *p, size_t len, pd_dispatch_node_t *n)
{
    const u_char  *last, *q, *comma;
    pd_str_t       idc, weight, nets, addrs;
    pd_int_t       w;

    last = p + len;
    n->naddrs = 0;
    n->nnets = 0;
    n->idc.len = 0;

    if (pd_dispatch_field(&p, last, &idc, 0) != PD_OK
        || pd_dispatch_field(&p, last, &weight, 0) != PD_OK
        || pd_dispatch_field(&p, last, &nets, 0) != PD_OK
        || pd_dispatch_field(&p, last, &addrs, 1) != PD_OK)
    {
        return "is not idc, weight, nets and addresses";
    }

    if (idc.len && pd_dispatch_parse_name(idc.data, idc.len, &n->idc)) {
        return "has a bad idc";
    }

    w = pd_atoi(weight.data, weight.len);
    if (w < 1 || w > 1000) {
        return "has a bad weight";
    }

    n->weight = (uint32_t) w;

    for (q = nets.data; q < nets.data + nets.len; q = comma + 1) {
        comma = memchr(q, ',', (size_t) (nets.data + nets.len - q));
        if (comma == NULL) {
            comma = nets.data + nets.len;
        }

        if (n->nnets == PD_DISPATCH_NETS_MAX
            || pd_dispatch_parse_name(q, (size_t) (comma - q),
                                      &n->nets[n->nnets])
               != NULL)
        {
            return "has a bad net";
        }

        n->nnets++;
    }

    for (q = addrs.data; q < addrs.data + addrs.len; q = comma + 1) {
        comma = memchr(q, ',', (size_t) (addrs.data + addrs.len - q));
        if (comma == NULL) {
            comma = addrs.data + addrs.len;
        }

        if (n->naddrs == PD_DISPATCH_ADDRS_MAX
            || pd_dispatch_parse_addr(q, (size_t) (comma - q), 1,
                                      &n->addrs[n->naddrs])
               != NULL)
        {
            return "has a bad address";
        }

        n->naddrs++;
    }

    if (n->naddrs == 0) {
        return "has no address";
    }

    return NULL;
}
