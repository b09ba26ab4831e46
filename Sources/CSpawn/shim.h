#include <spawn.h>

/* glibc declares these only under _GNU_SOURCE, which Swift's Glibc module is not built with; they are
   in every glibc Cortex runs on (2.29+), so declaring them here is enough to call them. */
extern int pipe2(int pipefd[2], int flags);
extern int posix_spawn_file_actions_addchdir_np(posix_spawn_file_actions_t *actions, const char *path);

/* pipe2(O_CLOEXEC): both ends close on exec, atomically, so no other thread's child inherits them. */
static inline int cortex_pipe_cloexec(int fds[2]) {
    return pipe2(fds, 02000000 /* O_CLOEXEC on Linux */);
}

#include <sys/wait.h>

/* Whether child `pid` has ended, without reaping it (WNOWAIT: whoever waits for it still can): 1 with
   its status in *status (the exit code, or the signal that ended it), 0 while it runs, -1 on error. */
static inline int cortex_child_ended(pid_t pid, int *status) {
    siginfo_t info;
    info.si_pid = 0;
    if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0) return -1;
    if (info.si_pid == 0) return 0;
    *status = info.si_status;
    return 1;
}
