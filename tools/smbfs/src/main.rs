//! smbfs: a FUSE filesystem that behaves like App Service Linux's `/home`, an Azure Files share
//! mounted over SMB (without `mfsymlinks`), for kuduhook's tests and benchmarks.
//!
//! It passes every call through to a backing folder on local disk, with the share's rules:
//! - `symlink()` fails with EOPNOTSUPP, and so does `link()` (no hard links over SMB);
//! - `renameat2` flags (RENAME_EXCHANGE, RENAME_NOREPLACE) fail with EINVAL;
//! - mode bits are ignored: `chmod` succeeds and changes nothing, and every file and folder
//!   reads as 0755 (a cifs mount's default `file_mode`/`dir_mode`);
//! - names are case-insensitive and case-preserving: `App.py` and `app.py` are one file, which
//!   keeps the case it was created with; a case-only rename changes the stored case;
//! - every metadata call (lookup, getattr, setattr, create, mkdir, unlink, rmdir, rename, open,
//!   opendir, readdir, release, statfs) costs `--latency-ms` before it is answered, as a round
//!   trip to the file server does; reads and writes of data do not;
//! - calls are answered by `--threads` workers, so parallel calls overlap their latency, as a
//!   cifs client's do, lookups and listings in one folder too (FUSE_PARALLEL_DIROPS); the
//!   kernel caches attributes and names for 1 s, as cifs' `actimeo=1`.
//!
//! - with `--count-calls FILE`, the number of round trips so far is in FILE (the tests count
//!   what a deployment costs on the share);
//! - with `--faults FILE`, it fails a change as a full, failing or refusing share would. FILE
//!   holds `KIND K` (`enospc`, `eio` or `eacces`, and a count from 1), or `none`; it is read
//!   again whenever it changes, which starts the count over. Changes are the calls that alter
//!   the share: create, write, mkdir, rename, unlink, rmdir, link, and setattr's times and size.
//!   The K-th fails: with `eio` (EIO) or `eacces` (EACCES) that one only; with `enospc`
//!   (ENOSPC) that one and every later change that takes space (create, write, mkdir, link, a
//!   truncate), as on a full disk, where removes and renames still work. The changes counted
//!   since FILE was read are in `FILE.changes` (a clean run's count is where a sweep ends).
//!
//! usage: smbfs BACKING MOUNTPOINT [--latency-ms N] [--threads N] [--count-calls FILE]
//!        [--faults FILE]
//! Runs in the foreground until unmounted (`umount MOUNTPOINT`).

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, KernelConfig, LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, Request, TimeOrNow, WriteFlags,
};

/// How long the kernel may trust a name or an attribute (cifs' default `actimeo`).
const TTL: Duration = Duration::from_secs(1);

struct SmbFs {
    backing: PathBuf,
    latency: Duration,
    state: Mutex<State>,
    /// With `--count-calls FILE`: the round trips so far, written to FILE after each one.
    counter: Option<Mutex<(u64, File)>>,
    /// With `--faults FILE`: the fault to inject, and the changes counted.
    faults: Option<Mutex<Faults>>,
}

/// A call that changes the share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Create,
    Write,
    Mkdir,
    Rename,
    Remove,
    Link,
    Times,
    Truncate,
}

impl Change {
    /// Whether it needs space the share may not have (a full disk still removes and renames).
    fn takes_space(self) -> bool {
        matches!(
            self,
            Change::Create | Change::Write | Change::Mkdir | Change::Link | Change::Truncate
        )
    }
}

/// The fault `--faults FILE` asks for, reread when FILE changes.
struct Faults {
    control: PathBuf,
    /// FILE's modification time and length when it was read.
    read_as: Option<(SystemTime, u64)>,
    /// The errno, and the change (from 1) that fails.
    fault: Option<(Errno, u64)>,
    /// Changes counted since FILE was read.
    seen: u64,
    out: File,
}

impl Faults {
    fn reload(&mut self) {
        let meta = fs::metadata(&self.control).ok();
        let stamp = meta
            .as_ref()
            .and_then(|m| Some((m.modified().ok()?, m.len())));
        if stamp == self.read_as {
            return;
        }
        self.read_as = stamp;
        self.seen = 0;
        let text = fs::read_to_string(&self.control).unwrap_or_default();
        let mut words = text.split_whitespace();
        let errno = match words.next() {
            Some("enospc") => Some(Errno::ENOSPC),
            Some("eio") => Some(Errno::EIO),
            Some("eacces") => Some(Errno::EACCES),
            _ => None,
        };
        let at = words.next().and_then(|k| k.parse().ok()).unwrap_or(0);
        self.fault = errno.map(|e| (e, at));
    }

    /// Counts `change`; the error it fails with, if it is to fail.
    fn check(&mut self, change: Change) -> Result<(), Errno> {
        self.reload();
        self.seen += 1;
        let _ = self
            .out
            .write_at(format!("{:>20}\n", self.seen).as_bytes(), 0);
        match self.fault {
            Some((errno, at)) if self.seen == at => Err(errno),
            Some((Errno::ENOSPC, at)) if at > 0 && self.seen > at && change.takes_space() => {
                Err(Errno::ENOSPC)
            }
            _ => Ok(()),
        }
    }
}

#[derive(Default)]
struct State {
    /// Inode number -> path relative to the backing folder ("" is the root).
    paths: HashMap<u64, PathBuf>,
    /// Path -> inode number, ordered so that a folder's descendants follow it (a rename finds
    /// them without scanning every path).
    inodes: BTreeMap<PathBuf, u64>,
    next_inode: u64,
    files: HashMap<u64, File>,
    /// An open folder's entries, listed when it was opened (an SMB enumeration handle), so that
    /// deleting entries while reading it skips none.
    dirs: HashMap<u64, Vec<(u64, FileType, OsString)>>,
    next_handle: u64,
}

impl State {
    fn inode_of(&mut self, relative: &Path) -> u64 {
        if let Some(ino) = self.inodes.get(relative) {
            return *ino;
        }
        self.next_inode += 1;
        let ino = self.next_inode;
        self.paths.insert(ino, relative.to_path_buf());
        self.inodes.insert(relative.to_path_buf(), ino);
        ino
    }

    /// Moves `from` (and everything under it) to `to` in the tables.
    fn moved(&mut self, from: &Path, to: &Path) {
        let affected: Vec<(u64, PathBuf)> = self
            .inodes
            .range(from.to_path_buf()..)
            .take_while(|(p, _)| p.starts_with(from))
            .map(|(p, ino)| (*ino, p.clone()))
            .collect();
        for (ino, old) in affected {
            // (joining "" would add a trailing slash)
            let rest = old.strip_prefix(from).unwrap();
            let new = match rest.as_os_str().is_empty() {
                true => to.to_path_buf(),
                false => to.join(rest),
            };
            self.inodes.remove(&old);
            self.inodes.insert(new.clone(), ino);
            self.paths.insert(ino, new);
        }
    }

    fn forget_path(&mut self, relative: &Path) {
        if let Some(ino) = self.inodes.remove(relative) {
            self.paths.remove(&ino);
        }
    }
}

fn errno(e: io::Error) -> Errno {
    Errno::from(e)
}

impl SmbFs {
    /// One round trip to the file server.
    fn round_trip(&self) {
        if let Some(counter) = &self.counter {
            let mut counter = counter.lock().unwrap();
            counter.0 += 1;
            let _ = counter
                .1
                .write_at(format!("{:>20}\n", counter.0).as_bytes(), 0);
        }
        if !self.latency.is_zero() {
            std::thread::sleep(self.latency);
        }
    }

    /// A change to the share: counted, and failed where `--faults` says so.
    fn change(&self, change: Change) -> Result<(), Errno> {
        match &self.faults {
            Some(faults) => faults.lock().unwrap().check(change),
            None => Ok(()),
        }
    }

    fn path_of(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        let state = self.state.lock().unwrap();
        state.paths.get(&ino.0).cloned().ok_or(Errno::ENOENT)
    }

    fn real(&self, relative: &Path) -> PathBuf {
        self.backing.join(relative)
    }

    /// The entry of `parent` whose name equals `name` ignoring case: its stored name.
    fn find(&self, parent: &Path, name: &OsStr) -> Result<Option<OsString>, Errno> {
        let dir = self.real(parent);
        if dir.join(name).symlink_metadata().is_ok() {
            return Ok(Some(name.to_os_string()));
        }
        let wanted = name.to_string_lossy().to_lowercase();
        for entry in fs::read_dir(&dir).map_err(errno)? {
            let entry = entry.map_err(errno)?;
            if entry.file_name().to_string_lossy().to_lowercase() == wanted {
                return Ok(Some(entry.file_name()));
            }
        }
        Ok(None)
    }

    fn attr(&self, relative: &Path) -> Result<FileAttr, Errno> {
        let meta = fs::symlink_metadata(self.real(relative)).map_err(errno)?;
        let ino = self.state.lock().unwrap().inode_of(relative);
        Ok(to_attr(ino, &meta))
    }

    fn entry(&self, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        let parent = self.path_of(parent)?;
        match self.find(&parent, name)? {
            Some(stored) => Ok(parent.join(stored)),
            None => Err(Errno::ENOENT),
        }
    }

    /// unlink and rmdir: `remove` the entry (found ignoring case), and forget it.
    fn remove(
        &self,
        parent: INodeNo,
        name: &OsStr,
        remove: fn(&Path) -> io::Result<()>,
        reply: ReplyEmpty,
    ) {
        self.round_trip();
        let result = self.entry(parent, name).and_then(|relative| {
            self.change(Change::Remove)?;
            remove(&self.real(&relative)).map_err(errno)?;
            self.state.lock().unwrap().forget_path(&relative);
            Ok(())
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    /// The file open under `fh`, for a read or write.
    fn open_file(&self, fh: FileHandle) -> Option<File> {
        let state = self.state.lock().unwrap();
        state.files.get(&fh.0).and_then(|f| f.try_clone().ok())
    }

    fn open_handle(&self, file: File) -> FileHandle {
        let mut state = self.state.lock().unwrap();
        state.next_handle += 1;
        let fh = state.next_handle;
        state.files.insert(fh, file);
        FileHandle(fh)
    }
}

fn to_attr(ino: u64, meta: &fs::Metadata) -> FileAttr {
    let time = |secs: i64, nanos: i64| {
        UNIX_EPOCH + Duration::new(secs.max(0) as u64, nanos.clamp(0, 999_999_999) as u32)
    };
    FileAttr {
        ino: INodeNo(ino),
        size: meta.len(),
        blocks: meta.blocks(),
        atime: time(meta.atime(), meta.atime_nsec()),
        mtime: time(meta.mtime(), meta.mtime_nsec()),
        ctime: time(meta.ctime(), meta.ctime_nsec()),
        crtime: time(meta.mtime(), meta.mtime_nsec()),
        kind: if meta.is_dir() {
            FileType::Directory
        } else {
            FileType::RegularFile
        },
        perm: 0o755,
        nlink: if meta.is_dir() { 2 } else { 1 },
        uid: meta.uid(),
        gid: meta.gid(),
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

fn to_time(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

impl Filesystem for SmbFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        // A cifs client sends lookups and listings in one folder in parallel; FUSE serializes
        // them per folder unless asked not to.
        config
            .add_capabilities(InitFlags::FUSE_PARALLEL_DIROPS)
            .map_err(|_| io::Error::other("the kernel cannot run folder operations in parallel"))
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.round_trip();
        match self.entry(parent, name).and_then(|p| self.attr(&p)) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.round_trip();
        match self.path_of(ino).and_then(|p| self.attr(&p)) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        self.round_trip();
        let result = self.path_of(ino).and_then(|relative| {
            let real = self.real(&relative);
            // Mode, owner: ignored, as a share without unix extensions ignores them.
            if size.is_some() {
                self.change(Change::Truncate)?;
            } else if atime.is_some() || mtime.is_some() {
                self.change(Change::Times)?;
            }
            if size.is_some() || atime.is_some() || mtime.is_some() {
                let file = OpenOptions::new()
                    .write(true)
                    .open(&real)
                    .or_else(|_| File::open(&real));
                let file = file.map_err(errno)?;
                if let Some(size) = size {
                    file.set_len(size).map_err(errno)?;
                }
                let mut times = fs::FileTimes::new();
                if let Some(t) = atime {
                    times = times.set_accessed(to_time(t));
                }
                if let Some(t) = mtime {
                    times = times.set_modified(to_time(t));
                }
                file.set_times(times).map_err(errno)?;
            }
            self.attr(&relative)
        });
        match result {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, _ino: INodeNo, reply: ReplyData) {
        reply.error(Errno::EINVAL);
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        self.round_trip();
        let result = self.path_of(parent).and_then(|parent| {
            if self.find(&parent, name)?.is_some() {
                return Err(Errno::EEXIST);
            }
            let relative = parent.join(name);
            self.change(Change::Mkdir)?;
            fs::create_dir(self.real(&relative)).map_err(errno)?;
            self.attr(&relative)
        });
        match result {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, |p| fs::remove_file(p), reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, |p| fs::remove_dir(p), reply);
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _link_name: &OsStr,
        _target: &Path,
        reply: ReplyEntry,
    ) {
        self.round_trip();
        reply.error(Errno::EOPNOTSUPP);
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        self.round_trip();
        if let Err(e) = self.change(Change::Link) {
            return reply.error(e);
        }
        reply.error(Errno::EOPNOTSUPP);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        self.round_trip();
        if !flags.is_empty() {
            return reply.error(Errno::EINVAL);
        }
        let result = (|| {
            let from = self.entry(parent, name)?;
            self.change(Change::Rename)?;
            let to_parent = self.path_of(newparent)?;
            // Held across the change, so that the tables and the disk agree.
            let mut state = self.state.lock().unwrap();
            let to = to_parent.join(newname);
            if let Some(existing) = self.find(&to_parent, newname)? {
                let existing = to_parent.join(existing);
                if existing != from {
                    // Replaced by the rename, as on any filesystem (whatever its case).
                    let real = self.real(&existing);
                    let replaced_dir = real.is_dir();
                    if replaced_dir {
                        fs::remove_dir(&real).map_err(errno)?;
                    } else {
                        fs::remove_file(&real).map_err(errno)?;
                    }
                    state.forget_path(&existing);
                }
            }
            fs::rename(self.real(&from), self.real(&to)).map_err(errno)?;
            state.moved(&from, &to);
            Ok(())
        })();
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.round_trip();
        let result = self.path_of(ino).and_then(|relative| {
            let mode = flags.0 & libc_accmode();
            if flags.0 & O_TRUNC != 0 && mode != RDONLY {
                self.change(Change::Truncate)?;
            }
            let file = OpenOptions::new()
                .read(mode != WRONLY)
                .write(mode != RDONLY)
                .custom_flags(flags.0 & O_TRUNC)
                .open(self.real(&relative))
                .map_err(errno)?;
            Ok(self.open_handle(file))
        });
        match result {
            Ok(fh) => reply.opened(fh, FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        self.round_trip();
        let result = self.path_of(parent).and_then(|parent| {
            let relative = match self.find(&parent, name)? {
                Some(_) if flags & O_EXCL != 0 => return Err(Errno::EEXIST),
                Some(stored) => parent.join(stored),
                None => parent.join(name),
            };
            self.change(Change::Create)?;
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(flags & O_TRUNC != 0)
                .open(self.real(&relative))
                .map_err(errno)?;
            let attr = self.attr(&relative)?;
            Ok((attr, self.open_handle(file)))
        });
        match result {
            Ok((attr, fh)) => reply.created(&TTL, &attr, Generation(0), fh, FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(file) = self.open_file(fh) else {
            return reply.error(Errno::EBADF);
        };
        let mut buf = vec![0; size as usize];
        let mut filled = 0;
        while filled < buf.len() {
            match file.read_at(&mut buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) => return reply.error(errno(e)),
            }
        }
        reply.data(&buf[..filled]);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let Some(file) = self.open_file(fh) else {
            return reply.error(Errno::EBADF);
        };
        if let Err(e) = self.change(Change::Write) {
            return reply.error(e);
        }
        match file.write_all_at(data, offset) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.round_trip();
        self.state.lock().unwrap().files.remove(&fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.round_trip();
        let result = self.path_of(ino).and_then(|relative| {
            let mut names: Vec<(OsString, bool)> = fs::read_dir(self.real(&relative))
                .map_err(errno)?
                .flatten()
                .map(|e| (e.file_name(), e.file_type().is_ok_and(|t| t.is_dir())))
                .collect();
            names.sort();
            let mut state = self.state.lock().unwrap();
            let mut entries = vec![
                (ino.0, FileType::Directory, OsString::from(".")),
                (ino.0, FileType::Directory, OsString::from("..")),
            ];
            for (name, is_dir) in names {
                let child = state.inode_of(&relative.join(&name));
                let kind = match is_dir {
                    true => FileType::Directory,
                    false => FileType::RegularFile,
                };
                entries.push((child, kind, name));
            }
            state.next_handle += 1;
            let fh = state.next_handle;
            state.dirs.insert(fh, entries);
            Ok(FileHandle(fh))
        });
        match result {
            Ok(fh) => reply.opened(fh, FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        self.round_trip();
        let state = self.state.lock().unwrap();
        let Some(entries) = state.dirs.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        for (i, (child, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*child), (i + 1) as u64, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.state.lock().unwrap().dirs.remove(&fh.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        self.round_trip();
        reply.statfs(1 << 30, 1 << 29, 1 << 29, 1 << 20, 1 << 19, 4096, 255, 4096);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }
}

const RDONLY: i32 = 0;
const WRONLY: i32 = 1;
const O_TRUNC: i32 = 0o1000;
const O_EXCL: i32 = 0o200;

fn libc_accmode() -> i32 {
    3
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut positional = Vec::new();
    let mut latency_ms = 1.0_f64;
    let mut threads = 16;
    let mut count_calls = None;
    let mut faults = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--latency-ms" => {
                latency_ms = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--latency-ms N")
            }
            "--threads" => threads = it.next().and_then(|v| v.parse().ok()).expect("--threads N"),
            "--count-calls" => count_calls = Some(it.next().expect("--count-calls FILE").clone()),
            "--faults" => faults = Some(PathBuf::from(it.next().expect("--faults FILE"))),
            _ => positional.push(arg.clone()),
        }
    }
    let [backing, mountpoint] = positional.as_slice() else {
        eprintln!(
            "usage: smbfs BACKING MOUNTPOINT [--latency-ms N] [--threads N] [--count-calls FILE] \
             [--faults FILE]"
        );
        std::process::exit(2);
    };
    let backing = fs::canonicalize(backing).expect("the backing folder exists");
    let mut root = State::default();
    root.paths.insert(INodeNo::ROOT.0, PathBuf::new());
    root.inodes.insert(PathBuf::new(), INodeNo::ROOT.0);
    root.next_inode = INodeNo::ROOT.0;
    let fs = SmbFs {
        backing,
        latency: Duration::from_secs_f64(latency_ms / 1000.0),
        state: Mutex::new(root),
        counter: count_calls.map(|path| {
            Mutex::new((
                0,
                File::create(path).expect("create the --count-calls file"),
            ))
        }),
        faults: faults.map(|control| {
            let mut changes = control.clone().into_os_string();
            changes.push(".changes");
            Mutex::new(Faults {
                out: File::create(changes).expect("create the --faults FILE.changes file"),
                control,
                read_as: None,
                fault: None,
                seen: 0,
            })
        }),
    };
    let mut config = Config::default();
    config.mount_options = vec![MountOption::FSName("smbfs".into())];
    config.acl = fuser::SessionACL::All;
    config.n_threads = Some(threads);
    config.clone_fd = true;
    if let Err(e) = fuser::mount(fs, mountpoint, &config) {
        eprintln!("smbfs: could not mount {mountpoint}: {e}");
        std::process::exit(1);
    }
}
