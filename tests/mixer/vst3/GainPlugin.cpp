// Gain in dB (one automatable parameter) and a polarity switch; output = input * 10^(gain/20) * (invert ? -1 : 1).
#include "DistrhoPlugin.hpp"
#include <cmath>

START_NAMESPACE_DISTRHO

class GainPlugin : public Plugin
{
public:
    GainPlugin() : Plugin(2, 0, 0), fGainDb(0.0f), fInvert(0.0f) {}

protected:
    const char* getLabel() const override { return "StemDeskTestGain"; }
    const char* getDescription() const override { return "Gain and polarity, for StemDesk's VST3 tests."; }
    const char* getMaker() const override { return "StemDesk"; }
    const char* getLicense() const override { return "GPL-3.0-or-later"; }
    uint32_t getVersion() const override { return d_version(1, 0, 0); }
    int64_t getUniqueId() const override { return d_cconst('s', 'd', 'G', 'n'); }

    void initParameter(uint32_t index, Parameter& parameter) override
    {
        parameter.hints = kParameterIsAutomatable;
        if (index == 0) {
            parameter.name = "Gain";
            parameter.symbol = "gain";
            parameter.unit = "dB";
            parameter.ranges.def = 0.0f;
            parameter.ranges.min = -60.0f;
            parameter.ranges.max = 12.0f;
        } else {
            parameter.hints |= kParameterIsBoolean;
            parameter.name = "Invert";
            parameter.symbol = "invert";
            parameter.ranges.def = 0.0f;
            parameter.ranges.min = 0.0f;
            parameter.ranges.max = 1.0f;
        }
    }

    float getParameterValue(uint32_t index) const override { return index == 0 ? fGainDb : fInvert; }

    void setParameterValue(uint32_t index, float value) override
    {
        if (index == 0) fGainDb = value; else fInvert = value;
    }

    void run(const float** inputs, float** outputs, uint32_t frames) override
    {
        const float gain = std::pow(10.0f, fGainDb / 20.0f) * (fInvert > 0.5f ? -1.0f : 1.0f);
        for (uint32_t channel = 0; channel < 2; ++channel)
            for (uint32_t i = 0; i < frames; ++i)
                outputs[channel][i] = inputs[channel][i] * gain;
    }

private:
    float fGainDb, fInvert;
    DISTRHO_DECLARE_NON_COPYABLE_WITH_LEAK_DETECTOR(GainPlugin)
};

Plugin* createPlugin() { return new GainPlugin(); }

END_NAMESPACE_DISTRHO
