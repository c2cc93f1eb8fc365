/*
 * Office macros that run by themselves when a document opens and then reach for the
 * operating system. Either alone is common in benign documents; together they are the
 * shape of a macro dropper.
 */
rule office_macro_autoexec_shell : office macro
{
    meta:
        description = "VBA macro with an auto-run entry point and a shell or object-creation call"
        author = "Assay"
        severity = "high"
        attack_id = "T1204.002"
    strings:
        $auto1 = "AutoOpen" nocase
        $auto2 = "Auto_Open" nocase
        $auto3 = "Document_Open" nocase
        $auto4 = "Workbook_Open" nocase
        $auto5 = "AutoExec" nocase
        $auto6 = "Document_Close" nocase
        $exec1 = "WScript.Shell" nocase
        $exec2 = "Shell(" nocase
        $exec3 = "CreateObject" nocase
        $exec4 = "ShellExecute" nocase
        $exec5 = "URLDownloadToFile" nocase
        $exec6 = "Win32_Process" nocase
    condition:
        filesize < 20MB and 1 of ($auto*) and 1 of ($exec*)
}
