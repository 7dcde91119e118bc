/*
 * A QEMU TCG plugin that counts the guest instructions a program executes, for
 * bench/arm_insn/run.sh. Written against QEMU 7.2's plugin API (Debian bookworm's qemu-user,
 * built with plugin support but shipping neither the header nor the example plugins), so the
 * few declarations it uses are written out here instead of including <qemu-plugin.h>.
 *
 *   qemu-aarch64 -plugin ./insn_plugin.so -d plugin -D count.txt ./prog args
 *   -> count.txt: "insns <total> pid <pid>"
 *
 * Only the process qemu started reports: a child it forks (ours probes its kernel table in
 * one) inherits the plugin and would report its own counts too, into the same log file. The
 * parent's count includes its instructions up to the fork and after, not the child's. Pass
 * the plugin on the command line, not through QEMU_PLUGIN, so that a program executed
 * through binfmt_misc does not load it too.
 *
 * Optional arguments lo=0x...,hi=0x...: also count the instructions whose address lies in
 * [lo, hi) ("insns_in_range <n>"; for a static binary the addresses are the ELF's), and with
 * mix=1 as well, each of those instructions separately: one line "at <vaddr> <count>
 * <disassembly>" per instruction executed in the range.
 *
 * Counting is an inline add per translated block (one per block executed, weighted by its
 * instruction count), so it is exact for straight-line blocks; a block left early by an
 * exception would be over-counted, which these programs do not do. One counter for all
 * vCPUs: run single-threaded programs.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);

#define EXPORT __attribute__((visibility("default")))

/* Provided by the qemu executable. */
extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id,
                                                  qemu_plugin_vcpu_tb_trans_cb_t cb);
extern void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb,
                                                     enum qemu_plugin_op op, void *ptr,
                                                     uint64_t imm);
extern void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn,
                                                       enum qemu_plugin_op op, void *ptr,
                                                       uint64_t imm);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
extern struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb,
                                                        size_t idx);
extern uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb,
                                           void *userdata);
extern void qemu_plugin_outs(const char *string);
extern char *qemu_plugin_insn_disas(const struct qemu_plugin_insn *insn);

EXPORT int qemu_plugin_version = 1; /* QEMU_PLUGIN_VERSION of 7.2 */

static uint64_t total;
static uint64_t in_range;
static uint64_t lo, hi;
static int mix;
static pid_t main_pid;

/* mix=1: one counter per instruction address in [lo, hi), found by linear probing. */
struct site {
    uint64_t vaddr, count;
    char *disas;
};
#ifndef SITES /* a power of two; token_profile.sh builds with -DSITES='(1 << 20)' */
#define SITES (1 << 16)
#endif
static struct site *sites;

static struct site *site_of(uint64_t vaddr)
{
    for (uint64_t i = (vaddr >> 2) % SITES, k = 0; k < SITES; i = (i + 1) % SITES, k++) {
        if (sites[i].disas == NULL || sites[i].vaddr == vaddr) {
            sites[i].vaddr = vaddr;
            return &sites[i];
        }
    }
    return NULL;
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &total, n);
    if (hi > lo) {
        for (size_t i = 0; i < n; i++) {
            struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
            uint64_t a = qemu_plugin_insn_vaddr(insn);
            if (a >= lo && a < hi) {
                qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64,
                                                           &in_range, 1);
                struct site *st = mix ? site_of(a) : NULL;
                if (st) {
                    if (st->disas == NULL) {
                        st->disas = qemu_plugin_insn_disas(insn);
                    }
                    qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64,
                                                               &st->count, 1);
                }
            }
        }
    }
}

static void at_exit(qemu_plugin_id_t id, void *p)
{
    char buf[128];
    (void)id;
    (void)p;
    if (getpid() != main_pid) {
        return;
    }
    snprintf(buf, sizeof buf, "insns %" PRIu64 " pid %ld\n", total, (long)getpid());
    qemu_plugin_outs(buf);
    if (hi > lo) {
        snprintf(buf, sizeof buf, "insns_in_range %" PRIu64 "\n", in_range);
        qemu_plugin_outs(buf);
    }
    for (size_t i = 0; mix && i < SITES; i++) {
        if (sites[i].disas != NULL && sites[i].count > 0) {
            char line[256];
            snprintf(line, sizeof line, "at 0x%" PRIx64 " %" PRIu64 " %s\n", sites[i].vaddr,
                     sites[i].count, sites[i].disas);
            qemu_plugin_outs(line);
        }
    }
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc,
                               char **argv)
{
    (void)info;
    main_pid = getpid();
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "lo=", 3) == 0) {
            lo = strtoull(argv[i] + 3, NULL, 0);
        } else if (strncmp(argv[i], "hi=", 3) == 0) {
            hi = strtoull(argv[i] + 3, NULL, 0);
        } else if (strcmp(argv[i], "mix=1") == 0) {
            mix = 1;
        } else {
            fprintf(stderr, "insn_plugin: unknown argument %s\n", argv[i]);
            return -1;
        }
    }
    if (mix) {
        sites = calloc(SITES, sizeof *sites);
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
