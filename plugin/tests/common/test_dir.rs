//! A fresh directory for each test: deleted when the test passes, kept (its path printed) when
//! it fails, so that a failure's files can be read and passing runs leave nothing behind.

use std::ops::Deref;
use std::path::Path;

pub struct TestDir(Option<tempfile::TempDir>);

/// A new, empty directory named after the test (`cyclesr-test-NAME-XXXXXX` in the system's
/// temporary directory).
pub fn temp_dir(name: &str) -> TestDir {
    let dir = tempfile::Builder::new()
        .prefix(&format!("cyclesr-test-{name}-"))
        .tempdir()
        .unwrap_or_else(|e| panic!("creating the directory of test {name}: {e}"));
    TestDir(Some(dir))
}

impl TestDir {
    pub fn path(&self) -> &Path {
        self.0.as_ref().expect("present until dropped").path()
    }
}

impl Deref for TestDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        self.path()
    }
}

impl AsRef<Path> for TestDir {
    fn as_ref(&self) -> &Path {
        self.path()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            if std::thread::panicking() {
                eprintln!("test files kept in {}", dir.keep().display());
            }
        }
    }
}
