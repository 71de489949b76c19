/* evmap report: one self-contained HTML page from a run's folder. */
#ifndef EVM_CLI_REPORT_H
#define EVM_CLI_REPORT_H

#include <stdbool.h>

/* Writes the report of folder dir to out (NULL: dir/report.html) and says
 * so unless quiet; returns the exit code (errors already printed). */
int report_write(const char *dir, const char *out, bool quiet);

/* The page before and after its data (report_page.c). */
extern const char report_page_head[];
extern const char report_page_tail[];

#endif
