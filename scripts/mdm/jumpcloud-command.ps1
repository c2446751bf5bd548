# jcdiag as a JumpCloud Command for Windows (PowerShell; the command runs as SYSTEM).
#
# Collects a diagnostics bundle, uploads it to the support case and prints ONE line: the
# JSON result of `jcdiag collect --json` (bundle ID, path, upload status, lifecycle verdict).
# A command's output is cut at 1 MB; one line never is. The bundle stays in $BundleDir,
# jcdiag's messages go to $BundleDir\jcdiag.log.
#
# Server, token file and recipient keys come from jcdiag's configuration:
# %ProgramData%\jcdiag\config.toml or the policy key HKLM\SOFTWARE\Policies\JumpCloud\jcdiag.
# Set the command's timeout above $MaxRuntime.
#
# Exit codes are jcdiag's own:
#   0 ok   1 error   2 usage   3 bundle made, some collectors failed
#   4 bundle made, upload failed (kept in the spool; the next run sends it)   5 nothing collected

$CaseId     = ''       # support case, e.g. 00123456; empty: the configured default case
$Since      = '7d'     # how far back logs are kept
$MaxRuntime = '25m'    # jcdiag stops itself (cleanly) after this long

$Jcdiag    = if ($env:JCDIAG_BIN) { $env:JCDIAG_BIN } else { Join-Path $env:ProgramFiles 'jcdiag\jcdiag.exe' }
$BundleDir = if ($env:JCDIAG_BUNDLE_DIR) { $env:JCDIAG_BUNDLE_DIR } else { Join-Path $env:ProgramData 'jcdiag\bundles' }
$Log       = Join-Path $BundleDir 'jcdiag.log'

function Write-Failure([string]$Message) {
    # One JSON line, like jcdiag's own errors.
    [Console]::Out.WriteLine((@{ error = $Message; exit_code = 1 } | ConvertTo-Json -Compress))
    exit 1
}

function Invoke-Jcdiag([string[]]$Arguments) {
    # System.Diagnostics.Process rather than `& exe 2>> log`: Windows PowerShell 5.1 turns a
    # native program's stderr into error records, which would garble the log or stop the script.
    $quoted = $Arguments | ForEach-Object { '"' + ($_ -replace '"', '\"') + '"' }
    $info = New-Object System.Diagnostics.ProcessStartInfo
    $info.FileName = $Jcdiag
    $info.Arguments = $quoted -join ' '
    $info.UseShellExecute = $false
    $info.RedirectStandardOutput = $true
    $info.RedirectStandardError = $true
    $info.CreateNoWindow = $true
    $process = [System.Diagnostics.Process]::Start($info)
    $stderr = $process.StandardError.ReadToEndAsync()
    $stdout = $process.StandardOutput.ReadToEnd()
    $process.WaitForExit()
    Add-Content -Path $Log -Value $stderr.Result -Encoding UTF8
    [pscustomobject]@{ ExitCode = $process.ExitCode; Stdout = $stdout }
}

if (-not (Test-Path -LiteralPath $Jcdiag -PathType Leaf)) {
    Write-Failure "jcdiag executable not found at $Jcdiag; deploy it there or set JCDIAG_BIN"
}
try {
    New-Item -ItemType Directory -Force -Path $BundleDir | Out-Null
    # Only SYSTEM and Administrators may read the bundles (well-known SIDs: any language).
    & icacls.exe $BundleDir /inheritance:r /grant:r '*S-1-5-18:(OI)(CI)F' '*S-1-5-32-544:(OI)(CI)F' | Out-Null
} catch {
    Write-Failure "cannot create ${BundleDir}: $($_.Exception.Message)"
}
if ((Test-Path -LiteralPath $Log) -and ((Get-Item -LiteralPath $Log).Length -gt 1MB)) {
    Move-Item -Force -LiteralPath $Log -Destination "$Log.1"
}

$arguments = @('collect', '--upload', '--json', '--yes', '--output', $BundleDir, '--since', $Since,
               '--max-runtime', $MaxRuntime)
if ($CaseId) { $arguments += @('--case', $CaseId) }
Add-Content -Path $Log -Value ("{0} jcdiag {1}" -f (Get-Date).ToUniversalTime().ToString('s'), ($arguments -join ' ')) -Encoding UTF8

$run = Invoke-Jcdiag $arguments
$line = ($run.Stdout -split "`r?`n" | Where-Object { $_.Trim() } | Select-Object -Last 1)
if ($line) {
    [Console]::Out.WriteLine($line)
} else {
    [Console]::Out.WriteLine((@{ error = "jcdiag printed no result; see $Log"; exit_code = $run.ExitCode } | ConvertTo-Json -Compress))
}
exit $run.ExitCode
