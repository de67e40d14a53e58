; Inno Setup 6 script for Asclepius Desk on Windows x64. NOT VERIFIED: written here, never built or run
; (the project's machines are Linux). Steps: installer/windows/README.md.
;
; Input: the PyInstaller one-folder bundle built ON WINDOWS from installer/asclepius.spec
; (dist\asclepius-desk\asclepius.exe + _internal\), with the portable llama.cpp wheel built there too.
#define AppName "Asclepius Desk"
#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#define Bundle "..\..\build\installer\dist\asclepius-desk"

[Setup]
AppId={{6C0F7E4A-3B1D-4C55-9A51-AD5C1E9D2B7E}
AppName={#AppName}
AppVersion={#AppVersion}
AppPublisher=Asclepius Desk project
DefaultDirName={autopf}\Asclepius Desk
DefaultGroupName=Asclepius Desk
; per-user install without admin rights by default; IT can force all users with /ALLUSERS
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=commandline dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir=..\..\dist
OutputBaseFilename=asclepius-desk-{#AppVersion}-windows-x86_64-setup
Compression=lzma2/max
SolidCompression=yes
UninstallDisplayIcon={app}\asclepius.exe
; Sign the setup and the uninstaller (see README.md); requires a SignTool named "codesign" in the IDE.
; SignTool=codesign
ChangesEnvironment=yes

[Files]
Source: "{#Bundle}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs
; llama.cpp built with MSVC and OpenMP needs the OpenMP runtime (vcomp140.dll, from the Visual C++
; redistributable); ship it beside the ggml DLLs rather than depend on a system-wide redistributable.
Source: "redist\vcomp140.dll"; DestDir: "{app}\_internal\llama_cpp\lib"; Flags: ignoreversion
Source: "redist\vcruntime140.dll"; DestDir: "{app}\_internal\llama_cpp\lib"; Flags: ignoreversion
Source: "redist\vcruntime140_1.dll"; DestDir: "{app}\_internal\llama_cpp\lib"; Flags: ignoreversion
Source: "redist\msvcp140.dll"; DestDir: "{app}\_internal\llama_cpp\lib"; Flags: ignoreversion

[Icons]
Name: "{group}\Asclepius Desk"; Filename: "{app}\asclepius.exe"; Parameters: "gui"; IconFilename: "{app}\asclepius.exe"
Name: "{group}\Uninstall Asclepius Desk"; Filename: "{uninstallexe}"

[Registry]
; `asclepius` on PATH (per user, or machine-wide when installed for all users)
Root: HKCU; Subkey: "Environment"; ValueType: expandsz; ValueName: "Path"; ValueData: "{olddata};{app}"; \
    Check: not IsAdminInstallMode and NeedsAddPath(ExpandConstant('{app}'))
Root: HKLM; Subkey: "SYSTEM\CurrentControlSet\Control\Session Manager\Environment"; ValueType: expandsz; \
    ValueName: "Path"; ValueData: "{olddata};{app}"; Check: IsAdminInstallMode and NeedsAddPath(ExpandConstant('{app}'))

[Run]
Filename: "{app}\asclepius.exe"; Parameters: "selftest"; Description: "Run the offline self-test"; \
    Flags: postinstall runhidden unchecked

; The uninstaller removes {app} only. The evaluation log, settings and models live in
; %LOCALAPPDATA%\asclepius-desk (platformdirs) and are never removed.

[Code]
function NeedsAddPath(Dir: string): Boolean;
var
  Paths: string;
begin
  if IsAdminInstallMode then
    RegQueryStringValue(HKLM, 'SYSTEM\CurrentControlSet\Control\Session Manager\Environment', 'Path', Paths)
  else
    RegQueryStringValue(HKCU, 'Environment', 'Path', Paths);
  Result := Pos(';' + Uppercase(Dir) + ';', ';' + Uppercase(Paths) + ';') = 0;
end;
