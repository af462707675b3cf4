"""Key file formats, one module each; `sshlib.keys.parse` picks one by sniffing the content."""
