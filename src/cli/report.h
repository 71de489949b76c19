/* evmap report: one self-contained HTML page from a run's folder. */
#ifndef EVM_CLI_REPORT_H
#define EVM_CLI_REPORT_H

/* The page before and after its data (report_page.c). */
extern const char report_page_head[];
extern const char report_page_tail[];

#endif
