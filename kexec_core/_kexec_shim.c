/* kexec_core._kexec: a tiny shim over syscall(2) for the calls glibc does not wrap (kexec_file_load, kexec_load,
 * finit_module) and the few the boot path needs beside them (reboot with LINUX_REBOOT_CMD_KEXEC, mount, umount2,
 * sync, statfs).
 *
 * Convention: return -errno on failure, read immediately after the call (see _kexec.h).
 * Syscalls: kexec_file_load(2), kexec_load(2), reboot(2), mount(2), umount2(2), finit_module(2), statfs(2).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/kexec.h>
#include <linux/magic.h>
#include <linux/reboot.h>

#define BM_RESULT(expr) ((expr) < 0 ? -errno : 0)

int bm_kexec_file_load(int kernel_fd, int initrd_fd, unsigned long cmdline_len, const char *cmdline,
                       unsigned long flags)
{
#ifdef SYS_kexec_file_load
    return BM_RESULT(syscall(SYS_kexec_file_load, kernel_fd, initrd_fd, cmdline_len, cmdline, flags));
#else
    /* Architectures without the syscall number (e.g. 32-bit x86): report it like the kernel would. */
    (void)kernel_fd; (void)initrd_fd; (void)cmdline_len; (void)cmdline; (void)flags;
    return -ENOSYS;
#endif
}

int bm_kexec_load(unsigned long entry, unsigned long nr_segments, struct kexec_segment *segments, unsigned long flags)
{
    return BM_RESULT(syscall(SYS_kexec_load, entry, nr_segments, segments, flags));
}

int bm_reboot_kexec(void)
{
    /* The raw syscall, not glibc's reboot(): the magic numbers come from linux/reboot.h. Returns only on failure. */
    return BM_RESULT(syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, LINUX_REBOOT_CMD_KEXEC, NULL));
}

int bm_mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)
{
    return BM_RESULT(mount(source, target, fstype, flags, data));
}

int bm_umount2(const char *target, int flags)
{
    return BM_RESULT(umount2(target, flags));
}

int bm_finit_module(int fd, const char *params, int flags)
{
    return BM_RESULT(syscall(SYS_finit_module, fd, params, flags));
}

void bm_sync(void)
{
    sync();
}

long long bm_statfs_type(const char *path)
{
    struct statfs buf;
    if (statfs(path, &buf) < 0)
        return -errno;
    /* f_type is a signed word on some ABIs; magic numbers are unsigned 32-bit. */
    return (long long)(uint32_t)buf.f_type;
}
