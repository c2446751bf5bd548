# jcdiag for Intune Remediations: DETECTION script (run as SYSTEM, 64-bit PowerShell).
#
# Asks `jcdiag check --json` whether this device needs attention: End of Life, unpatched, or
# an error finding about the JumpCloud agent (jcdiag exit 3). If so, and no bundle was made
# in the last $MaxAgeDays days, it exits 1 and Intune runs intune-remediate.ps1, which
# collects a bundle and uploads it to the support case; otherwise it exits 0. A check that
# fails (jcdiag exit 1 or 2) counts as needing attention: a broken agent is looked at, not hidden.
# For an on-demand collection ("Run remediation" on one device), use a copy with $Force = $true.
#
# Intune keeps only the last 2,048 characters of output, so this prints ONE short JSON line:
#   {"lifecycle":"unpatched","errors":1,"warnings":0,"exit_code":3,"recent_bundle":null}

$Force      = $false   # $true: always ask for a bundle (on-demand package)
$MaxAgeDays = 7        # at most one bundle per device this often, however long it needs action

$Jcdiag    = if ($env:JCDIAG_BIN) { $env:JCDIAG_BIN } else { Join-Path $env:ProgramFiles 'jcdiag\jcdiag.exe' }
$BundleDir = if ($env:JCDIAG_BUNDLE_DIR) { $env:JCDIAG_BUNDLE_DIR } else { Join-Path $env:ProgramData 'jcdiag\bundles' }

function Write-Line($Object) {
    $text = $Object | ConvertTo-Json -Compress
    if ($text.Length -gt 2000) { $text = $text.Substring(0, 2000) }
    [Console]::Out.WriteLine($text)
}

if ($Force) {
    Write-Line @{ force = $true }
    exit 1
}
if (-not (Test-Path -LiteralPath $Jcdiag -PathType Leaf)) {
    Write-Line @{ error = "jcdiag executable not found at $Jcdiag"; exit_code = 1 }
    exit 1
}

$info = New-Object System.Diagnostics.ProcessStartInfo
$info.FileName = $Jcdiag
$info.Arguments = 'check --json'
$info.UseShellExecute = $false
$info.RedirectStandardOutput = $true
$info.RedirectStandardError = $true
$info.CreateNoWindow = $true
$process = [System.Diagnostics.Process]::Start($info)
$stderr = $process.StandardError.ReadToEndAsync()
$stdout = $process.StandardOutput.ReadToEnd()
$process.WaitForExit()
$code = $process.ExitCode

try {
    $result = $stdout | ConvertFrom-Json
} catch {
    Write-Line @{ error = "jcdiag check printed no JSON: $($stderr.Result.Trim())"; exit_code = $code }
    exit 1
}
$findings = @($result.findings)
$recent = Get-ChildItem -LiteralPath $BundleDir -Filter 'JCD-*.7z' -File -ErrorAction SilentlyContinue |
    Where-Object { $_.LastWriteTime -gt (Get-Date).AddDays(-$MaxAgeDays) } |
    Sort-Object LastWriteTime | Select-Object -Last 1
Write-Line ([ordered]@{
    lifecycle     = $result.lifecycle.status
    errors        = @($findings | Where-Object { $_.severity -eq 'error' }).Count
    warnings      = @($findings | Where-Object { $_.severity -eq 'warning' }).Count
    exit_code     = $code
    recent_bundle = if ($recent) { $recent.BaseName } else { $null }
})
if ($code -eq 0 -or $recent) { exit 0 }
exit 1
