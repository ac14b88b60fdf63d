; Inno Setup script for the Windows installer. NOT BUILT OR TESTED HERE (no Windows machine): kept correct by review.
; Build on Windows, after `pyinstaller installer\stemdesk.spec` has produced dist\StemDesk\:
;   iscc /DVersion=0.1.0 installer\windows\stemdesk.iss      -> installer\windows\Output\StemDesk-0.1.0-setup.exe
; Per-user install (no administrator rights), Start menu entry, optional desktop icon, uninstaller.
; stemdesk.ico: convert installer\stemdesk.svg (for example with ImageMagick: magick stemdesk.svg -define
; icon:auto-resize=256,64,48,32,16 stemdesk.ico).

#ifndef Version
  #define Version "0.1.0"
#endif

[Setup]
AppId={{8E0E5B5A-6C3B-4E55-9C5C-5A1D2E7F0B31}
AppName=StemDesk
AppVersion={#Version}
AppPublisher=StemDesk contributors
AppPublisherURL=https://example.invalid/stemdesk
LicenseFile=..\..\LICENSE
DefaultDirName={localappdata}\Programs\StemDesk
DefaultGroupName=StemDesk
PrivilegesRequired=lowest
OutputBaseFilename=StemDesk-{#Version}-setup
Compression=lzma2/max
SolidCompression=yes
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
WizardStyle=modern
UninstallDisplayIcon={app}\StemDesk.exe

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked
Name: "addtopath"; Description: "Add the stemdesk command to PATH"; Flags: unchecked

[Files]
Source: "..\..\dist\StemDesk\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\StemDesk"; Filename: "{app}\StemDesk.exe"
Name: "{group}\Uninstall StemDesk"; Filename: "{uninstallexe}"
Name: "{userdesktop}\StemDesk"; Filename: "{app}\StemDesk.exe"; Tasks: desktopicon

[Registry]
Root: HKCU; Subkey: "Environment"; ValueType: expandsz; ValueName: "Path"; ValueData: "{olddata};{app}"; \
    Tasks: addtopath; Check: NeedsAddPath(ExpandConstant('{app}'))

[Run]
Filename: "{app}\StemDesk.exe"; Description: "Start StemDesk"; Flags: nowait postinstall skipifsilent

[Code]
function NeedsAddPath(Dir: string): boolean;
var
  Path: string;
begin
  if not RegQueryStringValue(HKEY_CURRENT_USER, 'Environment', 'Path', Path) then
    Result := True
  else
    Result := Pos(';' + Uppercase(Dir) + ';', ';' + Uppercase(Path) + ';') = 0;
end;
