# jcdiag for Intune Remediations: REMEDIATION script (run as SYSTEM, 64-bit PowerShell).
#
# Runs when intune-detect.ps1 found this device needs attention (or on demand, with
# "Run remediation"): collects a diagnostics bundle and uploads it to the support case with
# `jcdiag collect --upload --json --yes`. Server, token file, recipient keys and the default
# case come from %ProgramData%\jcdiag\config.toml or the policy key
# HKLM\SOFTWARE\Policies\JumpCloud\jcdiag (push it with a Settings Catalog / ADMX or a
# registry script).
#
# Intune keeps only the last 2,048 characters of output, so this prints ONE short JSON line
# (bundle ID, upload status, lifecycle verdict, exit code). The bundle stays in
# %ProgramData%\jcdiag\bundles; jcdiag's messages go to jcdiag.log there.
#
# Exit codes are jcdiag's own (Intune reports any non-zero as "failed"):
#   0 ok   1 error   2 usage   3 bundle made, some collectors failed
#   4 bundle made, upload failed (kept in the spool; the next run sends it)   5 nothing collected

$Since      = '7d'
$MaxRuntime = '25m'     # Intune stops a script after 60 minutes; jcdiag stops itself first

$Jcdiag    = if ($env:JCDIAG_BIN) { $env:JCDIAG_BIN } else { Join-Path $env:ProgramFiles 'jcdiag\jcdiag.exe' }
$BundleDir = if ($env:JCDIAG_BUNDLE_DIR) { $env:JCDIAG_BUNDLE_DIR } else { Join-Path $env:ProgramData 'jcdiag\bundles' }
$Log       = Join-Path $BundleDir 'jcdiag.log'

function Write-Line($Object) {
    $text = $Object | ConvertTo-Json -Compress
    if ($text.Length -gt 2000) { $text = $text.Substring(0, 2000) }
    [Console]::Out.WriteLine($text)
}

if (-not (Test-Path -LiteralPath $Jcdiag -PathType Leaf)) {
    Write-Line @{ error = "jcdiag executable not found at $Jcdiag"; exit_code = 1 }
    exit 1
}
try {
    New-Item -ItemType Directory -Force -Path $BundleDir | Out-Null
    & icacls.exe $BundleDir /inheritance:r /grant:r '*S-1-5-18:(OI)(CI)F' '*S-1-5-32-544:(OI)(CI)F' | Out-Null
} catch {
    Write-Line @{ error = "cannot create ${BundleDir}: $($_.Exception.Message)"; exit_code = 1 }
    exit 1
}
if ((Test-Path -LiteralPath $Log) -and ((Get-Item -LiteralPath $Log).Length -gt 1MB)) {
    Move-Item -Force -LiteralPath $Log -Destination "$Log.1"
}

$arguments = @('collect', '--upload', '--json', '--yes', '--output', $BundleDir, '--since', $Since,
               '--max-runtime', $MaxRuntime)
$info = New-Object System.Diagnostics.ProcessStartInfo
$info.FileName = $Jcdiag
$info.Arguments = ($arguments | ForEach-Object { '"' + ($_ -replace '"', '\"') + '"' }) -join ' '
$info.UseShellExecute = $false
$info.RedirectStandardOutput = $true
$info.RedirectStandardError = $true
$info.CreateNoWindow = $true
Add-Content -Path $Log -Value ("{0} jcdiag {1}" -f (Get-Date).ToUniversalTime().ToString('s'), ($arguments -join ' ')) -Encoding UTF8
$process = [System.Diagnostics.Process]::Start($info)
$stderr = $process.StandardError.ReadToEndAsync()
$stdout = $process.StandardOutput.ReadToEnd()
$process.WaitForExit()
Add-Content -Path $Log -Value $stderr.Result -Encoding UTF8
$code = $process.ExitCode

try {
    $result = $stdout | ConvertFrom-Json
} catch {
    Write-Line @{ error = "jcdiag printed no JSON; see $Log"; exit_code = $code }
    exit $code
}
if ($result.error) {
    Write-Line @{ error = $result.error; exit_code = $code }
} else {
    Write-Line ([ordered]@{
        bundle_id = $result.bundle_id
        upload    = $result.upload
        lifecycle = $result.lifecycle.status
        failed    = @($result.failed_collectors).Count
        exit_code = $code
    })
}
exit $code
