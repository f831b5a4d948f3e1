//! What a slow call's descriptor is, read from the kernel's own structures
//! at the call's exit: `task->files->fdt->fd[n]` → `struct file` → the
//! inode's file type, the open flags (`O_NONBLOCK`: the Go netpoller's
//! descriptors), the file operations (eventfd, epoll...), and for a socket
//! its family, type and protocol. Offsets come from the kernel's BTF
//! (`KERNEL_OFFSETS`, set by the loader), so this file has no layout of
//! its own. Only slow or P-losing calls get here.

use aya_ebpf::helpers::{bpf_get_current_task, bpf_probe_read_kernel};
use tracer_common::{FD_CLOSED, FD_FAILED, FD_NONE, FD_READ, FdInfo, KernelOffsets};

/// Where the fields are in this kernel (`enabled == 0`: unknown, nothing
/// is read).
#[unsafe(no_mangle)]
pub(crate) static KERNEL_OFFSETS: aya_ebpf::Global<KernelOffsets> =
    aya_ebpf::Global::new(KernelOffsets {
        enabled: 0,
        task_files: 0,
        files_fdt: 0,
        fdt_max_fds: 0,
        fdt_fd: 0,
        file_f_inode: 0,
        file_f_flags: 0,
        file_f_mode: 0,
        file_f_op: 0,
        file_private_data: 0,
        file_f_path_dentry: 0,
        inode_i_mode: 0,
        inode_i_sb: 0,
        sb_s_magic: 0,
        dentry_d_name_name: 0,
        socket_sk: 0,
        socket_type: 0,
        sock_family: 0,
        sock_type: 0,
        sock_protocol: 0,
        task_signal: 0,
        task_start_time: 0,
        _pad: 0,
        signal_live: 0,
    });

/// `S_IFMT` and `S_IFSOCK` of `i_mode`.
const S_IFMT: u32 = 0o170_000;
const S_IFSOCK: u32 = 0o140_000;
/// anon_inodefs (`ANON_INODE_FS_MAGIC`): eventfd, epoll, timerfd... are
/// told apart by their dentry name only.
const ANON_INODE_FS_MAGIC: u64 = 0x0904_1934;

#[inline(always)]
pub(crate) fn kernel<T>(addr: u64) -> Result<T, i32> {
    unsafe { bpf_probe_read_kernel(addr as *const T) }
}

/// What descriptor `fd` of the current task refers to.
#[inline(always)]
pub fn describe(fd: i64) -> FdInfo {
    let mut info = FdInfo {
        fd: fd as i32,
        ..FdInfo::default()
    };
    let k = KERNEL_OFFSETS.load();
    if k.enabled == 0 || !(0..=i64::from(i32::MAX)).contains(&fd) {
        info.state = FD_NONE;
        return info;
    }
    info.state = match read_into(&mut info, fd as u64, &k) {
        Ok(true) => FD_READ,
        Ok(false) => FD_CLOSED,
        Err(_) => FD_FAILED,
    };
    info
}

/// Follows the descriptor to its file; `Ok(false)` when it is not open.
#[inline(always)]
fn read_into(info: &mut FdInfo, fd: u64, k: &KernelOffsets) -> Result<bool, i32> {
    let task = unsafe { bpf_get_current_task() };
    let files: u64 = kernel(task + u64::from(k.task_files))?;
    let fdt: u64 = kernel(files + u64::from(k.files_fdt))?;
    let max_fds: u32 = kernel(fdt + u64::from(k.fdt_max_fds))?;
    if fd >= u64::from(max_fds) {
        return Ok(false);
    }
    let table: u64 = kernel(fdt + u64::from(k.fdt_fd))?;
    let file: u64 = kernel(table + 8 * fd)?;
    if file == 0 {
        return Ok(false);
    }
    let inode: u64 = kernel(file + u64::from(k.file_f_inode))?;
    let mode: u16 = kernel(inode + u64::from(k.inode_i_mode))?;
    info.i_mode = u32::from(mode);
    info.f_flags = kernel(file + u64::from(k.file_f_flags))?;
    info.f_op = kernel(file + u64::from(k.file_f_op))?;
    let sb: u64 = kernel(inode + u64::from(k.inode_i_sb))?;
    info.sb_magic = kernel(sb + u64::from(k.sb_s_magic))?;
    if info.sb_magic == ANON_INODE_FS_MAGIC {
        let dentry: u64 = kernel(file + u64::from(k.file_f_path_dentry))?;
        let name: u64 = kernel(dentry + u64::from(k.dentry_d_name_name))?;
        // A short name is followed by its NUL; the rest is ignored. Without
        // the name the kind is still known to be an anonymous inode.
        if let Ok(bytes) = kernel(name) {
            info.name = bytes;
        }
    }
    if info.i_mode & S_IFMT == S_IFSOCK {
        let socket: u64 = kernel(file + u64::from(k.file_private_data))?;
        let sk: u64 = kernel(socket + u64::from(k.socket_sk))?;
        if sk != 0 {
            info.sock_family = kernel(sk + u64::from(k.sock_family))?;
            info.sock_type = kernel(sk + u64::from(k.sock_type))?;
            info.sock_protocol = kernel(sk + u64::from(k.sock_protocol))?;
        }
    }
    Ok(true)
}
