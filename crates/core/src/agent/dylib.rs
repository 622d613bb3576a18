//! C libraries opened the first time they are needed (`dlopen`), not when the program starts.
//!
//! *Choice: the local agent's engines load on first use.* pocketsphinx (with sphinxbase, BLAS,
//! LAPACK and gfortran behind it) and flite (its voice's tables are relocated at load) cost the
//! process about 3 MB of resident memory from the moment it starts when linked in, although most
//! calls never reach the agent. Opened here, they cost nothing until a call is handed to it, and
//! a machine without them still runs the softphone: only the local agent reports them missing.
//! A library, once open, stays open for the life of the process.

use std::ffi::{c_void, CStr, CString};

/// An open library.
pub struct Library {
    handle: *mut c_void,
    name: &'static str,
}

// SAFETY: a dlopen handle may be used from any thread; it is never closed.
unsafe impl Send for Library {}
// SAFETY: as above; dlsym is thread-safe.
unsafe impl Sync for Library {}

impl Library {
    /// Opens `soname` (with the libraries it needs), or says why it could not, naming
    /// `package`, the Debian package that provides it.
    pub fn open(soname: &'static str, package: &str) -> Result<Library, String> {
        let c_name = CString::new(soname).map_err(|_| format!("bad library name {soname:?}"))?;
        // SAFETY: a valid NUL-terminated name; RTLD_NOW resolves everything here, so a missing
        // symbol is an error now rather than a crash mid-call.
        let handle = unsafe { libc::dlopen(c_name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() {
            return Err(format!("cannot load {soname} ({}); install {package}", last_error()));
        }
        Ok(Library { handle, name: soname })
    }

    /// The address of `symbol`, in the library or the libraries it needs.
    ///
    /// # Safety
    /// `T` must be a function pointer type matching the symbol's C declaration.
    pub unsafe fn get<T: Copy>(&self, symbol: &CStr) -> Result<T, String> {
        assert_eq!(std::mem::size_of::<T>(), std::mem::size_of::<*mut c_void>(), "a function pointer");
        let address = libc::dlsym(self.handle, symbol.as_ptr());
        if address.is_null() {
            return Err(format!("{} has no {}", self.name, symbol.to_string_lossy()));
        }
        Ok(std::mem::transmute_copy::<*mut c_void, T>(&address))
    }
}

/// dlerror's text.
fn last_error() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated message owned by libc.
    let message = unsafe { libc::dlerror() };
    if message.is_null() {
        "unknown error".into()
    } else {
        // SAFETY: non-null, NUL-terminated, read before any other dl call on this thread.
        unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_or_symbol_is_named_with_its_package() {
        let err = Library::open("libsipdesk-nonexistent.so.1", "sipdesk-nonexistent").err().unwrap();
        assert!(err.contains("libsipdesk-nonexistent.so.1") && err.contains("install sipdesk-nonexistent"), "{err}");
        let libc_so = Library::open("libc.so.6", "libc6").unwrap();
        // SAFETY: looked up only, never called.
        let missing = unsafe { libc_so.get::<extern "C" fn()>(c"sipdesk_no_such_symbol") }.err().unwrap();
        assert!(missing.contains("sipdesk_no_such_symbol"), "{missing}");
        // SAFETY: strlen's C declaration.
        let strlen = unsafe { libc_so.get::<unsafe extern "C" fn(*const libc::c_char) -> usize>(c"strlen") }.unwrap();
        // SAFETY: a NUL-terminated string.
        assert_eq!(unsafe { strlen(c"four".as_ptr()) }, 4);
    }
}
