/* A qemu TCG plugin that counts the guest instructions a program executes and prints the total at exit, for
 * benchmarks/arm_insns.py (an ARM proxy: instruction counts under qemu-aarch64 -cpu cortex-a76 / a72).
 * Debian's qemu-user 7.2 loads plugins of API version 1 but ships no header, so the few API functions used are
 * declared here; they resolve against the qemu binary when it loads the plugin.
 * Build: gcc -shared -fPIC -O2 -o insn_count.so insn_count_plugin.c -Wl,--unresolved-symbols=ignore-all */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
typedef struct {
  int smp_vcpus;  /* the rest of qemu's struct is not read */
} qemu_info_t;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id,
                                           void (*cb)(qemu_plugin_id_t, struct qemu_plugin_tb *));
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op, void *ptr,
                                              uint64_t imm);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, void (*cb)(qemu_plugin_id_t, void *), void *userdata);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

/* One counter for all vCPUs: the inline add is not atomic, so counts are exact for 1 guest thread only. */
static uint64_t insns;

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
  (void)id;
  /* Each time the block runs, add its instruction count (inline: no callback per execution). */
  qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &insns, qemu_plugin_tb_n_insns(tb));
}

static void at_exit(qemu_plugin_id_t id, void *p) {
  (void)id;
  (void)p;
  const char *path = getenv("INSN_COUNT_FILE");
  FILE *f = path ? fopen(path, "w") : stderr;
  if (!f) return;
  fprintf(f, "insns %" PRIu64 "\n", insns);
  if (path) fclose(f);
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                                               int argc, char **argv) {
  (void)info;
  (void)argc;
  (void)argv;
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
  qemu_plugin_register_atexit_cb(id, at_exit, NULL);
  return 0;
}
