//! The App Service platform a deployment targets, and the layout facts that differ between
//! them: plain values, unit-tested on any host.

/// The operating system layout a deployment targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Linux,
    Windows,
}

impl Platform {
    /// The platform this binary runs on.
    pub fn host() -> Platform {
        if cfg!(windows) {
            Platform::Windows
        } else {
            Platform::Linux
        }
    }

    /// "Linux", "Windows".
    pub fn name(self) -> &'static str {
        match self {
            Platform::Linux => "Linux",
            Platform::Windows => "Windows",
        }
    }

    /// The path separator of this platform.
    pub fn separator(self) -> char {
        match self {
            Platform::Linux => '/',
            Platform::Windows => '\\',
        }
    }

    /// Joins path segments with this platform's separator.
    pub fn join(self, segments: &[&str]) -> String {
        let sep = self.separator().to_string();
        segments.join(&sep)
    }

    /// The folder inside a virtual environment that holds its executables.
    pub fn env_bin_dir(self) -> &'static str {
        match self {
            Platform::Linux => "bin",
            Platform::Windows => "Scripts",
        }
    }

    /// The env's interpreter, relative to the env folder: what the web server is configured with.
    pub fn env_python(self) -> [&'static str; 2] {
        match self {
            Platform::Linux => ["bin", "python"],
            Platform::Windows => ["Scripts", "python.exe"],
        }
    }

    /// The separator of the `PATH` variable.
    pub fn path_list_separator(self) -> char {
        match self {
            Platform::Linux => ':',
            Platform::Windows => ';',
        }
    }

    /// The program and leading arguments that run a user's command line through the shell.
    pub fn shell(self) -> [&'static str; 2] {
        match self {
            Platform::Linux => ["sh", "-c"],
            Platform::Windows => ["cmd", "/c"],
        }
    }

    /// Interpreter names to look up on `PATH` when no version is requested.
    pub fn default_interpreter_names(self) -> &'static [&'static str] {
        match self {
            Platform::Linux => &["python3", "python"],
            Platform::Windows => &["python.exe"],
        }
    }
}
