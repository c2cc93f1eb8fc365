/*
 * The EICAR anti-malware test file: a 68-byte printable COM program that every engine
 * reports as malicious, so a submission of it proves the whole chain works end to end.
 * The standard allows trailing whitespace up to 128 bytes in total.
 */
rule eicar_test_file : test
{
    meta:
        description = "EICAR anti-malware test file"
        author = "Assay"
        severity = "critical"
    strings:
        $eicar = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
    condition:
        $eicar at 0 and filesize <= 128
}
