// A stereo gain plugin, built by the tests from Debian's dpf-source to load a real VST3 into StemDesk's mixer.
#ifndef DISTRHO_PLUGIN_INFO_H_INCLUDED
#define DISTRHO_PLUGIN_INFO_H_INCLUDED

#define DISTRHO_PLUGIN_BRAND   "StemDesk"
#define DISTRHO_PLUGIN_NAME    "StemDesk Test Gain"
#define DISTRHO_PLUGIN_URI     "urn:stemdesk:test-gain"
#define DISTRHO_PLUGIN_BRAND_ID  StDk
#define DISTRHO_PLUGIN_UNIQUE_ID sdGn

#define DISTRHO_PLUGIN_HAS_UI       0
#define DISTRHO_PLUGIN_IS_RT_SAFE   1
#define DISTRHO_PLUGIN_NUM_INPUTS   2
#define DISTRHO_PLUGIN_NUM_OUTPUTS  2

#endif
