/*
 * PowerShell started with a base64 command (-EncodedCommand or any of its abbreviations):
 * the usual way droppers hide the second stage from a casual look and from command lines.
 */
rule powershell_encoded_command : script
{
    meta:
        description = "PowerShell invoked with a base64-encoded command"
        author = "Assay"
        severity = "medium"
        attack_id = "T1059.001"
    strings:
        $ascii = /powershell(\.exe)?["']?[ \t][^\r\n]{0,200}[ \t][\-\/](ec|en|enc|enco|encod|encode|encoded|encodedc|encodedco|encodedcom|encodedcomm|encodedcomma|encodedcomman|encodedcommand)[ \t]+["']?[A-Za-z0-9+\/]{20}/ nocase
        $wide = /p\x00o\x00w\x00e\x00r\x00s\x00h\x00e\x00l\x00l\x00[^\r\n]{0,400}[\-\/]\x00e\x00(c|n)\x00([a-z]\x00){0,12}( \x00)+([A-Za-z0-9+\/]\x00){20}/ nocase
    condition:
        any of them
}

rule powershell_download_cradle : script
{
    meta:
        description = "PowerShell that downloads and runs code in one line"
        author = "Assay"
        severity = "medium"
        attack_id = "T1105"
    strings:
        $iex1 = "IEX" nocase ascii wide
        $iex2 = "Invoke-Expression" nocase ascii wide
        $dl1 = "DownloadString" nocase ascii wide
        $dl2 = "DownloadData" nocase ascii wide
        $wc = "Net.WebClient" nocase ascii wide
    condition:
        1 of ($iex*) and 1 of ($dl*) and $wc
}
