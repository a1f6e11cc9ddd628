/*
 * pd_room_apps.c: the app names a worker's connections are bound to,
 * each kept once.  A connection holds 2-byte ids instead of up to eight
 * 33-byte names: with many idle connections and few apps that is most of
 * what a connection would otherwise carry.  Names are counted and go
 * when their last connection does, so clients that invent app names
 * cannot fill the table for long; it is bounded at PD_ROOM_APPS_MAX.
 */

#include "pd_core.h"
#include "pd_room.h"
#include "pd_register.h"

#define PD_ROOM_APP_BUCKETS  1024

typedef struct {
    u_char      name[PD_APP_MAX + 1];
    uint8_t     len;
    uint16_t    next;           /* in the bucket, or in the free list */
    uint32_t    refs;
} pd_room_app_t;

static pd_room_app_t  *pd_room_app_tab;     /* PD_ROOM_APPS_MAX, 1-based */
static uint16_t        pd_room_app_buckets[PD_ROOM_APP_BUCKETS];
static uint16_t        pd_room_app_free;
static uint16_t        pd_room_app_top;     /* ids handed out so far */

static pd_uint_t
pd_room_app_hash(const u_char *name, size_t len)
{
    pd_uint_t  h = 5381;

    while (len--) {
        h = h * 33 + *name++;
    }

    return h & (PD_ROOM_APP_BUCKETS - 1);
}

const u_char *
pd_room_app_name(pd_uint_t id, size_t *len)
{
    if (len != NULL) {
        *len = pd_room_app_tab[id].len;
    }

    return pd_room_app_tab[id].name;
}

/* the id of name if a connection of this worker is bound to it, else 0 */
uint16_t
pd_room_app_find(const u_char *name, size_t len)
{
    pd_room_app_t  *a;
    uint16_t        id;

    if (pd_room_app_tab == NULL) {
        return 0;
    }

    for (id = pd_room_app_buckets[pd_room_app_hash(name, len)];
         id != 0;
         id = a->next)
    {
        a = &pd_room_app_tab[id];

        if (a->len == len && memcmp(a->name, name, len) == 0) {
            return id;
        }
    }

    return 0;
}

/* the id of name, counted once more; 0 when the table is full */
uint16_t
pd_room_app_get(const u_char *name, size_t len)
{
    pd_room_app_t  *a;
    pd_uint_t       b;
    uint16_t        id;

    if (len == 0 || len > PD_APP_MAX) {
        return 0;
    }

    if (pd_room_app_tab == NULL) {
        pd_room_app_tab = pd_calloc(sizeof(pd_room_app_t)
                                    * (PD_ROOM_APPS_MAX + 1), pd_log_root);
        if (pd_room_app_tab == NULL) {
            return 0;
        }
    }

    b = pd_room_app_hash(name, len);

    for (id = pd_room_app_buckets[b]; id != 0; id = a->next) {
        a = &pd_room_app_tab[id];

        if (a->len == len && memcmp(a->name, name, len) == 0) {
            a->refs++;
            return id;
        }
    }

    if (pd_room_app_free != 0) {
        id = pd_room_app_free;
        pd_room_app_free = pd_room_app_tab[id].next;

    } else if (pd_room_app_top < PD_ROOM_APPS_MAX) {
        id = ++pd_room_app_top;

    } else {
        return 0;
    }

    a = &pd_room_app_tab[id];
    pd_memcpy(a->name, name, len);
    a->name[len] = '\0';
    a->len = (uint8_t) len;
    a->refs = 1;
    a->next = pd_room_app_buckets[b];
    pd_room_app_buckets[b] = id;

    return id;
}

void
pd_room_app_put(pd_uint_t id)
{
    pd_room_app_t  *a = &pd_room_app_tab[id];
    uint16_t       *link;

    if (--a->refs != 0) {
        return;
    }

    link = &pd_room_app_buckets[pd_room_app_hash(a->name, a->len)];

    while (*link != id) {
        link = &pd_room_app_tab[*link].next;
    }

    *link = a->next;
    a->next = pd_room_app_free;
    pd_room_app_free = (uint16_t) id;
}


static int
pd_room_app_cmp(const void *a, const void *b)
{
    const pd_str_t  *x = a, *y = b;
    int              rc;

    rc = memcmp(x->data, y->data, pd_min(x->len, y->len));

    return rc ? rc : (x->len > y->len) - (x->len < y->len);
}

const char *
pd_room_apps_conf(pd_room_conf_t *rcf)
{
    pd_str_t   *name;
    pd_uint_t   i;

    if (rcf->apps == NULL) {
        return NULL;
    }

    name = rcf->apps->elts;

    for (i = 0; i < rcf->apps->nelts; i++) {
        if (pd_token_valid_name(&name[i], PD_APP_MAX) != PD_OK) {
            return "\"apps\" holds an invalid app name (1 to 32 of "
                   "A-Z a-z 0-9 . _ -)";
        }
    }

    /* below the register's table, so listed apps always find room */
    if (rcf->apps->nelts == 0 || rcf->apps->nelts > PD_REG_APP_TABLE / 2) {
        return "\"apps\" must list 1 to 512 names";
    }

    qsort(name, rcf->apps->nelts, sizeof(pd_str_t), pd_room_app_cmp);

    return NULL;
}

pd_int_t
pd_room_app_allowed(pd_room_conf_t *rcf, const u_char *name, size_t len)
{
    pd_str_t  key;

    if (rcf->apps == NULL) {
        return 1;
    }

    key.data = (u_char *) name;
    key.len = len;

    return bsearch(&key, rcf->apps->elts, rcf->apps->nelts,
                   sizeof(pd_str_t), pd_room_app_cmp) != NULL;
}
