/*
 * Executables compressed with UPX. Packing is common in malware and in legitimate small
 * tools alike, so on its own it is only a low-severity hint.
 */
rule upx_packed_pe : packer
{
    meta:
        description = "Windows PE packed with UPX (UPX section names and packer banner)"
        author = "Assay"
        severity = "low"
    strings:
        $section0 = { 55 50 58 30 00 00 00 00 }
        $section1 = { 55 50 58 31 00 00 00 00 }
        $magic = "UPX!"
    condition:
        uint16(0) == 0x5A4D and uint32(uint32(0x3C)) == 0x00004550 and
        $section0 in (0..1024) and ($section1 in (0..1024) or $magic)
}

rule upx_packed_elf : packer
{
    meta:
        description = "ELF executable packed with UPX (packer banner and magic)"
        author = "Assay"
        severity = "low"
    strings:
        $magic = "UPX!"
        $banner = "This file is packed with the UPX executable packer"
    condition:
        uint32(0) == 0x464C457F and $magic and $banner
}
