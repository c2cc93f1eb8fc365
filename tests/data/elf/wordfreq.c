/* wordfreq: count the words of standard input and print the most frequent ones.
 *
 * Written for the Assay test suite as a small, ordinary, dynamically linked program: the ELF
 * service is compared with binutils' readelf on the binary built from this file (see README.md).
 *
 *   wordfreq [-n COUNT] [-m MIN_LENGTH] < text
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_WORD 64
#define TABLE_BITS 12

struct entry {
    char *word;
    unsigned long count;
    struct entry *next;
};

static struct entry *table[1u << TABLE_BITS];
static size_t distinct;

static unsigned long hash(const char *text)
{
    unsigned long value = 1469598103934665603UL;
    while (*text) {
        value ^= (unsigned char)*text++;
        value *= 1099511628211UL;
    }
    return value;
}

static void add(const char *word)
{
    unsigned long slot = hash(word) & ((1u << TABLE_BITS) - 1);
    struct entry *item;
    for (item = table[slot]; item; item = item->next) {
        if (strcmp(item->word, word) == 0) {
            item->count++;
            return;
        }
    }
    item = malloc(sizeof *item);
    if (!item || !(item->word = strdup(word))) {
        perror("wordfreq");
        exit(2);
    }
    item->count = 1;
    item->next = table[slot];
    table[slot] = item;
    distinct++;
}

static int by_count(const void *left, const void *right)
{
    const struct entry *a = *(const struct entry *const *)left;
    const struct entry *b = *(const struct entry *const *)right;
    if (a->count != b->count)
        return a->count < b->count ? 1 : -1;
    return strcmp(a->word, b->word);
}

static double entropy(struct entry **items, size_t n, size_t total)
{
    double bits = 0.0, share;
    size_t i;
    for (i = 0; i < n; i++) {
        share = (double)items[i]->count / (double)total;
        bits -= share * log2(share);
    }
    return bits;
}

static long number(const char *text, const char *what)
{
    char *end;
    long value;
    errno = 0;
    value = strtol(text, &end, 10);
    if (errno || *end || value < 0) {
        fprintf(stderr, "wordfreq: bad %s: %s\n", what, text);
        exit(2);
    }
    return value;
}

int main(int argc, char **argv)
{
    long top = 10, min_length = 1;
    char word[MAX_WORD + 1];
    size_t length = 0, total = 0, i, n = 0;
    struct entry **sorted, *item;
    int c, option;

    while ((option = getopt(argc, argv, "n:m:")) != -1) {
        if (option == 'n')
            top = number(optarg, "count");
        else if (option == 'm')
            min_length = number(optarg, "length");
        else {
            fprintf(stderr, "usage: %s [-n COUNT] [-m MIN_LENGTH] < text\n", argv[0]);
            return 2;
        }
    }
    do {
        c = getchar();
        if (c != EOF && (isalnum(c) || c == '\'')) {
            if (length < MAX_WORD)
                word[length++] = (char)tolower(c);
            continue;
        }
        if (length >= (size_t)min_length) {
            word[length] = '\0';
            add(word);
            total++;
        }
        length = 0;
    } while (c != EOF);

    sorted = calloc(distinct ? distinct : 1, sizeof *sorted);
    if (!sorted) {
        perror("wordfreq");
        return 2;
    }
    for (i = 0; i < (1u << TABLE_BITS); i++)
        for (item = table[i]; item; item = item->next)
            sorted[n++] = item;
    qsort(sorted, n, sizeof *sorted, by_count);
    for (i = 0; i < n && i < (size_t)top; i++)
        printf("%8lu %6.2f%% %s\n", sorted[i]->count, 100.0 * sorted[i]->count / (double)total, sorted[i]->word);
    printf("%zu words, %zu distinct, %.2f bits of entropy per word\n", total, n, entropy(sorted, n, total));
    return 0;
}
