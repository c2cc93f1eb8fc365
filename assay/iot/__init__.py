"""IoT forensics: captures, router reports and cloud accounts."""
