//! Giving up power after start-up: chroot, the unprivileged user, and the
//! system's own sandbox (pledge/unveil on OpenBSD; capabilities, Landlock
//! and seccomp on Linux). (Pending.)
