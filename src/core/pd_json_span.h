/*
 * pd_json_span.h: finds the raw text of a top-level member of a JSON
 * object, so a payload is passed through byte for byte instead of being
 * re-serialised.  Pure code; the caller validates the document first
 * (with jansson), this only scans it.
 */

#ifndef PD_JSON_SPAN_H
#define PD_JSON_SPAN_H

/*
 * Sets *value to the exact bytes of the value of `key` in the top-level
 * object held in p[0 .. len).  PD_OK, PD_DECLINED when the key is absent,
 * PD_ERROR when the text is not a JSON object (or is truncated).  Keys
 * are compared as raw bytes: a key written with escapes does not match.
 */
pd_int_t pd_json_member_span(const u_char *p, size_t len, const char *key,
    pd_str_t *value);

#endif /* PD_JSON_SPAN_H */
