/*
 * pd_seq.h: the node's sequence numbers (message ids, presence events),
 * unique across the node's processes and across its runs, whatever the
 * wall clock does between them.
 */

#ifndef PD_SEQ_H
#define PD_SEQ_H

/*
 * Numbers a run hands out beyond the mark in the file before it writes a
 * new mark: the file is written once per this many, and a run started
 * after a crash skips at most this many.
 */
#define PD_SEQ_BLOCK  ((uint64_t) 1 << 32)

/*
 * At start, before anything is bound: opens path (absolute,
 * NUL-terminated; one of the daemon's own files, see
 * pd_file_open_own()), kept for the master's life and inherited by its
 * workers.  PD_OK, or PD_ERROR with the whole message in err.
 */
pd_int_t pd_seq_open(const char *path, const pd_file_guard_t *guard,
    char *err, size_t len);

/*
 * Once the stats zone is made at start: the counter goes above the
 * file's mark (or stays at the wall clock's ms << 12, when that is
 * higher), and the next block is written as the new mark.  A file that
 * holds no mark (new, or damaged) is logged and the clock alone counts.
 * PD_ERROR only when the mark cannot be written.
 */
pd_int_t pd_seq_start(pd_log_t *log);

/*
 * The next number: increasing in each process, never one handed out
 * before by this node.  Crossing the mark, the caller writes the next
 * one (under the zone's lock and the file's, so the processes of a
 * binary upgrade's two masters stay apart) before it uses the number.
 */
uint64_t pd_seq_next(void);

/* unit tests: a smaller block */
void pd_seq_set_block(uint64_t block);

#endif /* PD_SEQ_H */
