//! `--sandbox`: the whole run in new user, mount, network and PID
//! namespaces, with only a loopback of its own.
//!
//! # Why the whole run, not each program
//!
//! The harness's scripted peers and the program under test talk over
//! loopback, so they must share one network namespace. Giving each program
//! a namespace of its own would cut it off from the peers (or need a veth
//! pair and addresses, which needs privileges). So the harness itself
//! moves into the sandbox at the very start of `main`, before any thread
//! or runtime exists (`unshare(CLONE_NEWUSER)` fails with `EINVAL` in a
//! process with more than one thread), and every program it starts
//! inherits it.
//!
//! # How
//!
//! [`enter`] calls `unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET |
//! CLONE_NEWPID)`, writes `deny` to `/proc/self/setgroups` and maps the
//! current user and group to themselves (files the run writes stay the
//! user's), then forks:
//!
//! - The **parent** stays outside. It forwards SIGINT, SIGTERM and SIGHUP
//!   (each time; a SIGHUP ignored at start, as under `nohup`, stays
//!   ignored) to the child, waits for it, and exits with its exit status,
//!   or 128 + the signal that killed it. The child is in a process group of
//!   its own, so a Ctrl-C at a terminal or a signal to the parent's group
//!   reaches it once, through the parent, and a second Ctrl-C still means
//!   "stop at once". (So it is a background group of the terminal: Ctrl-Z
//!   stops only the parent, and under `stty tostop` its output would stop
//!   it.)
//! - The **child** is PID 1 of the new PID namespace. It asks for SIGKILL
//!   when the parent dies (`PR_SET_PDEATHSIG`, checked against the race
//!   with a pipe the parent holds open), makes every mount private, mounts
//!   a fresh `/proc` (so the harness's `/proc` sweep sees the namespace's
//!   PIDs), brings up `lo` (`SIOCSIFFLAGS`), installs the interrupt handler
//!   (a PID 1 drops signals it has no handler for) set to ignore signals
//!   sent from inside the namespace, and returns to run the command as
//!   usual.
//!
//! # What it guarantees
//!
//! - Nothing started by any program survives the run: when PID 1 exits,
//!   however it exits (SIGKILL included), the kernel kills every process
//!   in the namespace; a SIGKILL of the outer process kills PID 1 through
//!   `PR_SET_PDEATHSIG`.
//! - Only loopback: the namespace has no interface but its own `lo`. A
//!   program cannot reach another host, the host's own addresses, or
//!   services listening on the host's loopback (`connect` fails at once,
//!   `ENETUNREACH` or `ECONNREFUSED`).
//! - A program cannot see or signal processes outside the namespace (not
//!   even the outer harness), and cannot stop the harness: PID 1 of its
//!   namespace, it gets no SIGKILL or SIGSTOP from inside, and ignores the
//!   SIGINT, SIGTERM and SIGHUP that come from inside. `kill -9 -1`
//!   reaches only the namespace's other processes (other cases' programs
//!   with `--jobs` above 1).
//!
//! It does not guarantee: a read-only filesystem (files the user can
//! write stay writable: making the rest read-only would break the caches
//! and build folders that interpreters and compilers write to, which
//! differ by language), memory limits (cgroup v2 is not used: run the
//! harness in a container, or under `systemd-run --user --scope -p
//! MemoryMax=...` where cgroup v2 is there).
//!
//! Where the kernel refuses a step (user namespaces disabled, a container's
//! seccomp or AppArmor profile, a `/proc` that may not be mounted again),
//! [`enter`] fails with a message naming the step and what to do; there is
//! no silent fallback to running without the sandbox.

use std::fmt;
use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::unistd::{ForkResult, Pid};

/// A step of entering the sandbox that failed, and why.
#[derive(Debug)]
pub struct SandboxError {
    step: &'static str,
    errno: Errno,
}

impl SandboxError {
    fn at(step: &'static str) -> impl FnOnce(Errno) -> SandboxError {
        move |errno| SandboxError { step, errno }
    }

    /// What to do about it, depending on the step.
    fn advice(&self) -> &'static str {
        match (self.step, self.errno) {
            (UNSHARE, Errno::EINVAL) => {
                "the process already had several threads (a harness bug: please report it)"
            }
            (UNSHARE | UID_MAP | GID_MAP | SETGROUPS, _) => {
                "this kernel or container does not let this user create user namespaces; \
                 enable them (sysctl kernel.unprivileged_userns_clone=1, \
                 user.max_user_namespaces above 0, and on Ubuntu 23.10 and later \
                 kernel.apparmor_restrict_unprivileged_userns=0), or allow unshare(2) in \
                 the container's seccomp profile"
            }
            (MOUNT_PROC | PRIVATE, _) => {
                "this kernel or container does not let a new namespace mount its own /proc \
                 (containers that mask parts of /proc do that)"
            }
            _ => "this kernel or container refused a step the sandbox needs",
        }
    }
}

impl fmt::Display for SandboxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "--sandbox: {} failed: {} ({}); {}. Run without --sandbox (every program is \
             still contained, see README \"Running untrusted programs\"), or in a container",
            self.step,
            self.errno.desc(),
            self.errno,
            self.advice()
        )
    }
}

impl std::error::Error for SandboxError {}

const UNSHARE: &str = "creating user, mount, network and PID namespaces (unshare)";
const SETGROUPS: &str = "writing /proc/self/setgroups";
const UID_MAP: &str = "writing /proc/self/uid_map";
const GID_MAP: &str = "writing /proc/self/gid_map";
const FORK: &str = "starting PID 1 of the new PID namespace (fork)";
const PDEATHSIG: &str = "asking for SIGKILL when the outer process dies (PR_SET_PDEATHSIG)";
const PRIVATE: &str = "making mounts private";
const MOUNT_PROC: &str = "mounting a fresh /proc";
const LOOPBACK: &str = "bringing up the loopback interface";
const SIGNALS: &str = "blocking signals in the outer process";

/// Moves this process's run into the sandbox (see the module docs).
///
/// Must be called before any thread is started. Returns in the child, PID
/// 1 of the new namespaces, which goes on with the run; the outer process
/// never returns (it exits with the child's status). Errors are the step
/// the kernel refused, before or after the fork; no step is skipped.
pub fn enter() -> Result<(), SandboxError> {
    use nix::sched::{unshare, CloneFlags};
    // Fixed now, so tokens carry the outer PID (every process inside sees
    // itself as PID 1 and its children as small numbers).
    super::process::run_id();
    let uid = nix::unistd::geteuid();
    let gid = nix::unistd::getegid();
    unshare(
        CloneFlags::CLONE_NEWUSER
            | CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWNET
            | CloneFlags::CLONE_NEWPID,
    )
    .map_err(SandboxError::at(UNSHARE))?;
    write_proc("/proc/self/setgroups", "deny").map_err(SandboxError::at(SETGROUPS))?;
    write_proc("/proc/self/uid_map", &format!("{uid} {uid} 1"))
        .map_err(SandboxError::at(UID_MAP))?;
    write_proc("/proc/self/gid_map", &format!("{gid} {gid} 1"))
        .map_err(SandboxError::at(GID_MAP))?;

    let forwarded = forwarded_signals();
    let mut watched = forwarded;
    watched.add(Signal::SIGCHLD);
    let mut old_mask = SigSet::empty();
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&watched), Some(&mut old_mask))
        .map_err(SandboxError::at(SIGNALS))?;
    // The child sees the read end at its end of file once the parent has
    // died, whatever killed it.
    let (alive_rx, alive_tx) = nix::unistd::pipe().map_err(SandboxError::at(FORK))?;
    // SAFETY: this process has one thread (unshare(CLONE_NEWUSER) above
    // fails with EINVAL otherwise), so no lock is held by a thread that
    // the child would lack.
    match unsafe { nix::unistd::fork() }.map_err(SandboxError::at(FORK))? {
        ForkResult::Parent { child } => {
            drop(alive_rx);
            let _ = nix::unistd::setpgid(child, child);
            let status = supervise(child, &watched, &forwarded);
            drop(alive_tx);
            std::process::exit(status);
        }
        ForkResult::Child => {
            drop(alive_tx);
            let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(SandboxError::at(PDEATHSIG))?;
            if parent_gone(&alive_rx) {
                std::process::exit(128 + Signal::SIGKILL as i32);
            }
            drop(alive_rx);
            nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old_mask), None)
                .map_err(SandboxError::at(SIGNALS))?;
            inside()?;
            super::process::from_outside_only();
            super::process::install_interrupt_handler();
            Ok(())
        }
    }
}

/// In the child, PID 1: private mounts, a fresh `/proc`, `lo` up.
fn inside() -> Result<(), SandboxError> {
    use nix::mount::{mount, MsFlags};
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(SandboxError::at(PRIVATE))?;
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(SandboxError::at(MOUNT_PROC))?;
    loopback_up().map_err(SandboxError::at(LOOPBACK))
}

/// Writes a `/proc` file in one `write(2)`, as the id maps require.
fn write_proc(path: &str, text: &str) -> Result<(), Errno> {
    use std::io::Write;
    let errno = |e: std::io::Error| Errno::from_raw(e.raw_os_error().unwrap_or(0));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(errno)?;
    file.write_all(text.as_bytes()).map_err(errno)
}

/// SIGINT and SIGTERM, and SIGHUP unless it is ignored (`nohup`).
fn forwarded_signals() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    if !ignored(Signal::SIGHUP) {
        set.add(Signal::SIGHUP);
    }
    set
}

/// Whether `signal` is ignored, from `SigIgn` in `/proc/self/status`.
fn ignored(signal: Signal) -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("SigIgn:"))?;
            u64::from_str_radix(line["SigIgn:".len()..].trim(), 16).ok()
        })
        .is_some_and(|mask| mask & (1 << (signal as u32 - 1)) != 0)
}

/// The outer process: forwards `forwarded` signals to `child` until it
/// ends; its exit status, or 128 + the signal that killed it.
fn supervise(child: Pid, watched: &SigSet, forwarded: &SigSet) -> i32 {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    loop {
        match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, signal, _)) => return 128 + signal as i32,
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(_) => return 2,
        }
        match watched.wait() {
            Ok(signal) if forwarded.contains(signal) => {
                let _ = nix::sys::signal::kill(child, signal);
            }
            _ => {}
        }
    }
}

/// Whether the write end of the pipe is closed: the parent has died
/// (before `PR_SET_PDEATHSIG` could take effect).
fn parent_gone(alive: &std::os::fd::OwnedFd) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(alive.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(n) if n > 0 => fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLIN)),
        _ => false,
    }
}

/// Sets `IFF_UP` on `lo` (a new network namespace starts with it down);
/// the kernel then gives it 127.0.0.1/8 and ::1.
fn loopback_up() -> Result<(), Errno> {
    use nix::libc;
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: `ifreq` is plain data (a name and a union of integers and
    // addresses) for which all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (to, from) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *to = *from as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the name and writes `ifru_flags` of `req`,
    // which lives across the call; the socket is open.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) } < 0 {
        return Err(Errno::last());
    }
    // SAFETY: SIOCGIFFLAGS above filled in `ifru_flags`; SIOCSIFFLAGS reads
    // the name and the flags of `req`, which lives across the call.
    let set = unsafe {
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &mut req)
    };
    if set < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_the_step_and_what_to_do() {
        let e = SandboxError {
            step: UNSHARE,
            errno: Errno::EPERM,
        };
        let text = e.to_string();
        for want in [
            "--sandbox: creating user",
            "EPERM",
            "unprivileged_userns_clone",
            "apparmor_restrict_unprivileged_userns",
            "Run without --sandbox",
        ] {
            assert!(text.contains(want), "{want} not in {text}");
        }
        let e = SandboxError {
            step: MOUNT_PROC,
            errno: Errno::EPERM,
        };
        assert!(e.to_string().contains("/proc"), "{e}");
    }

    #[test]
    fn sighup_ignored_is_read_from_the_status_file() {
        // The test runner does not ignore SIGSEGV.
        assert!(!ignored(Signal::SIGSEGV));
    }
}
