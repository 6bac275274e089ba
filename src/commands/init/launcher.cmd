@echo off
rem kuduhook's launcher for a Windows site, written by `kuduhook init --launcher`: Kudu runs
rem this file (.deployment: command = deploy\kuduhook.cmd); it runs deploy\launcher.py, which
rem runs the kuduhook version pinned there, downloaded once and checked against its SHA-256.
rem The Python: KUDUHOOK_LAUNCHER_PYTHON, else python on PATH, else App Service's D:\home\python*.
setlocal
set "KUDUHOOK_PY=%KUDUHOOK_LAUNCHER_PYTHON%"
if not defined KUDUHOOK_PY for %%p in (python.exe) do set "KUDUHOOK_PY=%%~$PATH:p"
if not defined KUDUHOOK_PY for /d %%d in (D:\home\python3*) do if exist "%%d\python.exe" set "KUDUHOOK_PY=%%d\python.exe"
if not defined KUDUHOOK_PY (
  echo kuduhook launcher: error: no Python found to run deploy\launcher.py 1>&2
  echo kuduhook launcher: fix: set the app setting KUDUHOOK_LAUNCHER_PYTHON to a python.exe with pip 1>&2
  exit /b 1
)
"%KUDUHOOK_PY%" "%~dp0launcher.py" %*
exit /b %ERRORLEVEL%
