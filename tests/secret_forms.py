"""The secret forms of issue 12 (and a few more), shared by the unit, property and collect tests.

Each :class:`Form` is a snippet as it appears in a real artifact (a ``ps aux`` line, a
log line quoting a command, a config file excerpt), the secrets it holds (none may
survive) and the neighbours that must stay (``db1`` after ``mysql -pSECRET``).
``where`` says which artifact of a collect the snippet belongs in: ``log`` (the
agent log), ``config`` (a config file of its own format, by ``suffix``) or ``ps``
(the output of ``ps aux``).  Tokens are built from parts so that no scanner of this
repository mistakes the test data for leaked credentials.
"""
from __future__ import annotations

from dataclasses import dataclass

PS_HEAD = "USER         PID %CPU %MEM    VSZ   RSS TTY      STAT START   TIME COMMAND\n"


def ps_line(command: str, pid: int = 4242) -> str:
    return f"root     {pid:>7}  0.0  0.1  12345  6789 ?        Ss   10:00   0:00 {command}\n"


@dataclass(frozen=True)
class Form:
    name: str
    text: str
    secrets: tuple[str, ...]
    keep: tuple[str, ...] = ()
    where: str = "log"            # log | config | ps
    suffix: str = ".txt"          # the config file's name ending, for where == "config"


_SLACK = "xoxb-" + "2345678901-" + "1234567890123-" + "AbCdEfGhIjKlMnOpQrStUvWx"
_STRIPE = "sk_" + "live_" + "4eC39HqLyjWDarjtT1zdp7dc9Q"
_GITLAB = "glpat-" + "x9Yk2mQw7PzR4tLs8NvB"
_GITHUB = "ghp_" + "R8a2KmN3pQ7sT1vW4xY6zB9cD0eF2gH5jK7m"
_SENDGRID = "SG." + "k3Fq9ZtR2mWv8LpXc4NbYd" + "." + "Hs7Jg1Qe5Ta0Uo6Ki2Rw9Zx3Cv8Bn4Ml7Pq1Sd5Fg0H"
_NPM = "npm_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"

FORMS: tuple[Form, ...] = (
    # --- command lines (ps output and log lines quoting a command)
    Form("mysql-glued", ps_line("mysql -uroot -pS3cr3tMysql! db1"), ("S3cr3tMysql!",),
         ("db1", "-uroot"), "ps"),
    Form("mysql-long-separate", ps_line("mysqldump --password HunterTwo22 --databases db2"),
         ("HunterTwo22",), ("db2",), "ps"),
    Form("mysql-long-eq", "2026-11-20 10:00:01 [INFO] exec: mysql --password=Eq$ecret99 -h db.local appdb\n",
         ("Eq$ecret99",), ("appdb", "db.local")),
    Form("7z-glued", ps_line("7z a /tmp/x.7z -pZipP4ssw0rd /etc/hosts"), ("ZipP4ssw0rd",),
         ("/tmp/x.7z", "/etc/hosts"), "ps"),
    Form("7z-in-log", "2026-11-20 10:00:02 [INFO] running \"7z x backup.7z -pL0gZipPass -o/tmp/out\"\n",
         ("L0gZipPass",), ("backup.7z", "-o/tmp/out")),
    Form("curl-u", ps_line("curl -u admin:CurlPa55word https://api.example.com/v1"), ("CurlPa55word",),
         ("admin", "https://api.example.com/v1"), "ps"),
    Form("curl-user-long", "2026-11-20 10:00:03 [DEBUG] cmd: curl --user 'svc:Quoted Pass 7' -X POST https://h.example.com\n",
         ("Quoted Pass 7",), ("svc", "https://h.example.com")),
    Form("curl-u-glued", ps_line("curl -uops:GluedCurl77 https://x.example.com"), ("GluedCurl77",),
         ("https://x.example.com",), "ps"),
    Form("sshpass-separate", ps_line("sshpass -p SshPassWord1 ssh admin@10.0.0.5"), ("SshPassWord1",),
         ("admin@10.0.0.5",), "ps"),
    Form("sshpass-glued", "2026-11-20 10:00:04 [INFO] exec sshpass -pGluedSsh42 scp a b:\n",
         ("GluedSsh42",), ("scp",)),
    Form("net-use", ps_line(r"net use \\srv01\share /user:CORP\svc_backup NetUs3P@ss /persistent:no"),
         ("NetUs3P@ss",), (r"\\srv01\share", r"CORP\svc_backup", "/persistent:no"), "ps"),
    Form("net-use-password-first", ps_line(r"net.exe use Z: \\srv02\data Sec0ndNet! /user:bob"),
         ("Sec0ndNet!",), (r"\\srv02\data", "/user:bob"), "ps"),
    Form("powershell-securestring",
         "2026-11-20 10:00:05 [INFO] powershell.exe -Command \"$p = ConvertTo-SecureString 'PsS3cure!x' -AsPlainText -Force\"\n",
         ("PsS3cure!x",), ("-AsPlainText",)),
    Form("powershell-securestring-string", ps_line("pwsh -c ConvertTo-SecureString -String \"StrParam9z\" -AsPlainText -Force"),
         ("StrParam9z",), ("-AsPlainText",), "ps"),
    Form("powershell-password-param", ps_line("powershell.exe New-LocalUser -Name helpdesk -Password Pw4NewUser -NoPassword:$false"),
         ("Pw4NewUser",), ("helpdesk",), "ps"),
    Form("agent-connect-key", ps_line("/bin/bash ./install.sh -k a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0"),
         ("a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0",), ("./install.sh",), "ps"),
    Form("openssl-passin", ps_line("openssl pkcs12 -export -in c.pem -passout pass:0pensslOut -out c.p12"),
         ("0pensslOut",), ("c.pem", "c.p12"), "ps"),
    Form("ldapsearch-w", ps_line("ldapsearch -x -D cn=admin,dc=corp -w LdapSearchPw -b dc=corp"),
         ("LdapSearchPw",), ("cn=admin,dc=corp",), "ps"),
    Form("smbclient-percent", ps_line("smbclient //fs/share -U alice%SmbPerc3nt"), ("SmbPerc3nt",),
         ("//fs/share", "alice"), "ps"),
    Form("sqlcmd-P", ps_line("sqlcmd -S db01 -U sa -P SqlCmdP4ss -Q select"), ("SqlCmdP4ss",),
         ("db01",), "ps"),
    Form("redis-cli-a", ps_line("redis-cli -h cache -a RedisAuth99 ping"), ("RedisAuth99",), ("ping",), "ps"),
    # --- beyond the list
    Form("ad-reset-securestring", ps_line('pwsh Set-ADAccountPassword bob -NewPassword (ConvertTo-SecureString -AsPlainText "AdReset6!" -Force)'),
         ("AdReset6!",), ("bob", "-Force"), "ps"),
    Form("docker-env", ps_line("docker run -e DB_PASSWORD=DockEnvPw2 -p 8080:80 nginx"), ("DockEnvPw2",),
         ("8080:80", "nginx"), "ps"),
    Form("psexec", ps_line(r'"C:\Tools\PsExec.exe" \\srv -u admin -p PsExecPw21 cmd'), ("PsExecPw21",),
         ("admin", "cmd"), "ps"),
    Form("cifs-mount-options", "2026-11-20 10:00:11 [INFO] mount -t cifs //fs/x /mnt -o username=bob,password=CifsPw23,vers=3\n",
         ("CifsPw23",), ("username=bob", "/mnt")),
    Form("sql-connection-string", "2026-11-20 10:00:12 [INFO] conn Server=db01;Database=app;User Id=sa;Password=SqlConnPw10;\n",
         ("SqlConnPw10",), ("Server=db01",)),
    Form("xml-property-element", '<property name="db.password">XmlPropPw16</property>\n<property name="db.user">app</property>\n',
         ("XmlPropPw16",), ("app",), "config", ".xml"),
    Form("netrc-line", "machine api.example.com login bob password NetrcPw30\n", ("NetrcPw30",),
         ("api.example.com", "bob"), "config", ".netrc"),
    Form("netrc-lines", "machine files.example.com\n  login bob\n  password NetrcLines31\n", ("NetrcLines31",),
         ("files.example.com", "bob"), "config", ".netrc"),
    Form("ldap-conf-bindpw", "uri ldaps://dc01.corp\nbinddn cn=svc,dc=corp\nbindpw LdapConfPw32\n", ("LdapConfPw32",),
         ("ldaps://dc01.corp", "cn=svc,dc=corp"), "config", ".conf"),
    Form("sssd-authtok", "[domain/corp]\nldap_default_authtok = SssdTok33\nldap_uri = ldaps://dc01\n", ("SssdTok33",),
         ("ldaps://dc01",), "config", ".conf"),
    Form("wpa-psk", 'network={\n  ssid="corp-wifi"\n  psk="WpaPsk34xx"\n}\n', ("WpaPsk34xx",), ("corp-wifi",),
         "config", ".conf"),
    # --- structure: YAML, plist, XML, INI, .env, .reg, PowerShell
    Form("yaml-next-line", "ldap:\n  host: ldap.corp.example.com\n  bind_password:\n    Yaml_NextLine_Pw\n  port: 636\n",
         ("Yaml_NextLine_Pw",), ("ldap.corp.example.com", "636"), "config", ".yaml"),
    Form("yaml-block-scalar", "service:\n  api_token: |\n    BlockScalarLineOne\n    BlockScalarLineTwo\n  region: us-east-1\n",
         ("BlockScalarLineOne", "BlockScalarLineTwo"), ("us-east-1",), "config", ".yml"),
    Form("yaml-folded-scalar", "db:\n  password: >-\n    FoldedSecretPartA\n    FoldedSecretPartB\nother: keep-me\n",
         ("FoldedSecretPartA", "FoldedSecretPartB"), ("keep-me",), "config", ".yaml"),
    Form("plist-string", "<dict>\n\t<key>Password</key>\n\t<string>PlistStr1ngPw</string>\n\t<key>User</key>\n\t<string>alice</string>\n</dict>\n",
         ("PlistStr1ngPw",), ("alice",), "config", ".plist"),
    Form("plist-data", "<dict>\n\t<key>SharedSecret</key>\n\t<data>\n\tUGxpc3REYXRh\n\tU2VjcmV0MTIz\n\t</data>\n\t<key>Port</key>\n\t<integer>8443</integer>\n</dict>\n",
         ("UGxpc3REYXRh", "U2VjcmV0MTIz"), ("8443",), "config", ".plist"),
    Form("xml-add-key-value", '<appSettings>\n  <add key="BindPassword" value="XmlB1ndPw" />\n  <add key="Server" value="dc01.corp" />\n</appSettings>\n',
         ("XmlB1ndPw",), ("dc01.corp",), "config", ".config"),
    Form("xml-value-first", '<setting value="ValueFirstPw" name="ApiSecret"/>\n<setting value="keep-value" name="Mode"/>\n',
         ("ValueFirstPw",), ("keep-value",), "config", ".xml"),
    Form("xml-attribute", '<connection server="db01" password="AttrPassw0rd" timeout="30"/>\n',
         ("AttrPassw0rd",), ("db01", "30"), "config", ".xml"),
    Form("xml-element", "<credentials>\n  <username>svc</username>\n  <password>ElemPassw0rd</password>\n</credentials>\n",
         ("ElemPassw0rd",), ("svc",), "config", ".xml"),
    Form("ini-semicolon", "[ldap]\nbind_password = Semi;Colon&Amp,Comma\nserver = dc01\n",
         ("Semi;Colon&Amp,Comma", "Colon&Amp", "Amp,Comma"), ("dc01",), "config", ".ini"),
    Form("properties", "db.url=jdbc:mysql://db01/app\ndb.password=Pr0pertiesPw\n", ("Pr0pertiesPw",),
         ("jdbc:mysql://db01/app",), "config", ".properties"),
    Form("dotenv", "export API_TOKEN=EnvT0kenValue;more&stuff\nAPP_ENV=production\n",
         ("EnvT0kenValue", "more&stuff"), ("production",), "config", ".env"),
    Form("reg-export", 'Windows Registry Editor Version 5.00\n\n[HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon]\n"DefaultUserName"="kiosk"\n"DefaultPassword"="RegAutoLogon1"\n',
         ("RegAutoLogon1",), ("kiosk",), "config", ".reg"),
    Form("powershell-hashtable", "$cfg = @{\n    Server   = 'dc01'\n    Password = 'HashT4blePw'\n}\n",
         ("HashT4blePw",), ("dc01",), "config", ".ps1"),
    Form("unquoted-ampersand", "2026-11-20 10:00:06 [DEBUG] login password=Amp&Semi;Comma,End next=1\n",
         ("Amp&Semi;Comma,End", "Semi;Comma", "Comma,End"), ("next=1",)),
    # --- vendor tokens with no keyword nearby
    Form("slack-bot-token", f"2026-11-20 10:00:07 [INFO] notifier configured with {_SLACK}\n", (_SLACK,)),
    Form("stripe-live-key", f"2026-11-20 10:00:08 [INFO] billing {_STRIPE} loaded\n", (_STRIPE,)),
    Form("gitlab-pat", f"2026-11-20 10:00:09 [INFO] clone via {_GITLAB} ok\n", (_GITLAB,)),
    Form("github-pat", f"2026-11-20 10:00:10 [INFO] using {_GITHUB}\n", (_GITHUB,)),
    Form("sendgrid", f"mail relay {_SENDGRID}\n", (_SENDGRID,), (), "config", ".txt"),
    Form("npm-token", f"//registry.npmjs.org/:_authToken={_NPM}\n", (_NPM,), ("registry.npmjs.org",),
         "config", ".npmrc"),
)

#: Values that must stay in every bundle: redacting them would make bundles useless.
MUST_STAY: tuple[str, ...] = (
    "5f3a9c2e1b7d4f6a8c0e2b4d",                                  # 24-hex object id (systemKey)
    "64b7f2a9c1d3e5f7a9b0c2d4",
    "c0ffee00-1234-5678-9abc-def012345678",                      # UUIDs
    "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",   # sha256
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "2.14.1", "v1.203.0", "10.0.22631.4460", "22.04.4",            # versions
    "console.jumpcloud.com", "agent.jumpcloud.com", "kickstart.jumpcloud.com",
    "https://console.jumpcloud.com/api/v2/systems/5f3a9c2e1b7d4f6a8c0e2b4d/memberof",
    "x509: certificate signed by unknown authority",             # error texts
    "dial tcp 10.1.2.3:443: i/o timeout",
    "Access denied for user 'root'@'localhost' (using password: YES)",
    "password policy updated",                                   # the word password in prose
    "the password must be changed at next logon",
    "Token refreshed, expires in 3600s",
    "Authentication failed: invalid password",
)

MUST_STAY_TEXT = (
    "2026-11-20 10:00:00 [INFO] systemKey=5f3a9c2e1b7d4f6a8c0e2b4d connected\n"
    "2026-11-20 10:00:00 [INFO] object 64b7f2a9c1d3e5f7a9b0c2d4 updated\n"
    "2026-11-20 10:00:00 [INFO] certuuid c0ffee00-1234-5678-9abc-def012345678 policy 3f2504e0-4f89-11d3-9a0c-0305e82c3301\n"
    "2026-11-20 10:00:00 [INFO] Downloaded payload sha256=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
    "2026-11-20 10:00:00 [INFO] empty file sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
    "2026-11-20 10:00:00 [INFO] Agent update check: current=2.14.1 latest=v1.203.0 os=10.0.22631.4460 ubuntu 22.04.4\n"
    "2026-11-20 10:00:00 [INFO] GET https://console.jumpcloud.com/api/v2/systems/5f3a9c2e1b7d4f6a8c0e2b4d/memberof 200\n"
    "2026-11-20 10:00:00 [INFO] connecting to agent.jumpcloud.com and kickstart.jumpcloud.com\n"
    "2026-11-20 10:00:00 [ERROR] x509: certificate signed by unknown authority\n"
    "2026-11-20 10:00:00 [ERROR] dial tcp 10.1.2.3:443: i/o timeout\n"
    "2026-11-20 10:00:00 [ERROR] mysql: Access denied for user 'root'@'localhost' (using password: YES)\n"
    "2026-11-20 10:00:00 [INFO] password policy updated: minLength=12\n"
    "2026-11-20 10:00:00 [INFO] the password must be changed at next logon\n"
    "2026-11-20 10:00:00 [INFO] Token refreshed, expires in 3600s\n"
    "2026-11-20 10:00:00 [WARN] Authentication failed: invalid password\n"
)
